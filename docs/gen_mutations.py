"""Write the parity gate's mutation tables from a run of its mutation suite, so they show what was run.

``make test-mutations`` runs every case of ``tests/test_gate_mutations.py`` (every family's
representative, every format and precision) with ``--junitxml=build/mutations.xml`` and then this
script, which reads that report and rewrites two tables between ``<!-- mutations:begin -->`` and
``<!-- mutations:end -->``:

- in README.md, mutation x (format, precision): how many representatives' gates caught it;
- in docs/export.md, representative x (format, precision) the same way, then every survivor with
  the reason its strict xfail gives, and any case that errored.

A case that passed is a mutation caught (the test requires ``ParityError``); an xfail is a survivor
the suite expects (strict: it fails when the mutation starts being caught); a failed case is a
survivor nobody expected, unless it is a strict xfail that passed (``[XPASS(strict)]``): a mutation
caught that the suite still lists as a survivor. Nothing is written when the report holds no mutation case.

    python docs/gen_mutations.py build/mutations.xml
    python docs/gen_mutations.py build/mutations-*.xml     # a run in parts, one report each
    python docs/gen_mutations.py build/mutations.xml --readme COPY.md --details COPY2.md
"""
from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- mutations:begin -->"
END = "<!-- mutations:end -->"
TEST = "test_gate_catches_mutation"
COLUMNS = [("onnx", "fp32"), ("tflite", "fp32"), ("coreml", "fp32"), ("coreml", "fp16"), ("tflite", "fp16")]


@dataclass(frozen=True)
class Case:
    """One mutation case of the report: where it ran and what the gate did."""

    format: str
    precision: str
    model: str
    mutation: str
    outcome: str  # "caught", "survived" (expected: a strict xfail), "missed" (failed), "error"
    detail: str = ""  # the xfail's reason, or the first line of the failure


def read_report(path: Path) -> list[Case]:
    """The mutation cases of a pytest JUnit XML report (skipped ones, deselected by a marker, left out)."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise SystemExit(f"cannot read {path}: {error}; run `make test-mutations` to write it") from None
    cases = []
    for testcase in root.iter("testcase"):
        name = testcase.get("name", "")
        if not name.startswith(TEST + "["):
            continue
        fmt, precision, model, mutation = name[len(TEST) + 1:-1].split("-", 3)
        skipped, failure, error = (testcase.find(tag) for tag in ("skipped", "failure", "error"))
        if skipped is not None:
            if skipped.get("type") != "pytest.xfail":
                continue  # a skip is not a result
            outcome, detail = "survived", skipped.get("message", "").removeprefix("xfail").strip(" :")
        elif failure is not None and (failure.get("message") or "").startswith("[XPASS(strict)]"):
            outcome, detail = "caught", "caught, though the suite lists it as a survivor (a stale strict xfail)"
        elif failure is not None:
            outcome, detail = "missed", (failure.get("message") or "").splitlines()[0] if failure.get("message") else ""
        elif error is not None:
            outcome, detail = "error", (error.get("message") or "").splitlines()[0] if error.get("message") else ""
        else:
            outcome, detail = "caught", ""
        cases.append(Case(fmt, precision, model, mutation, outcome, detail))
    return cases


def _cell(cases: list[Case]) -> str:
    if not cases:
        return "n/a"  # the column ran, this mutation does not apply to this row's models
    caught = sum(c.outcome == "caught" for c in cases)
    return f"{caught}/{len(cases)}" if caught == len(cases) else f"**{caught}/{len(cases)}**"


def _table(cases: list[Case], row_of, row_title: str) -> str:
    rows: dict[str, dict[tuple[str, str], list[Case]]] = defaultdict(lambda: defaultdict(list))
    for case in cases:
        rows[row_of(case)][(case.format, case.precision)].append(case)
    lines = [f"| {row_title} | " + " | ".join(f"{f} {p}" for f, p in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    ran = {(case.format, case.precision) for case in cases}
    for row, cells in sorted(rows.items()):  # the report's order is xdist's completion order
        lines.append(f"| {row} | " + " | ".join(_cell(cells.get(column, [])) if column in ran else "not run"
                                                for column in COLUMNS) + " |")
    return "\n".join(lines)


def _totals(cases: list[Case]) -> str:
    caught = sum(c.outcome == "caught" for c in cases)
    return (f"{len(cases)} cases over {len({c.model for c in cases})} representatives: {caught} caught, "
            f"{sum(c.outcome == 'survived' for c in cases)} survive as strict xfails, "
            f"{sum(c.outcome == 'missed' for c in cases)} survive unexpectedly, "
            f"{sum(c.outcome == 'error' for c in cases)} errored.")


def readme_table(cases: list[Case]) -> str:
    """Mutation x (format, precision): caught/run over the family representatives it applies to."""
    return (_table(cases, lambda c: c.mutation, "mutation") + "\n\n" + _totals(cases)
            + " Cells: representatives whose gate caught it / representatives it applies to.")


def details_table(cases: list[Case]) -> str:
    """Representative x (format, precision), then every survivor with its reason."""
    text = _table(cases, lambda c: c.model, "representative") + "\n\n" + _totals(cases)
    survivors = [c for c in cases if c.outcome != "caught"]
    if survivors:
        text += "\n\nNot caught:\n\n" + "\n".join(
            f"- {c.format} {c.precision}, {c.model}, {c.mutation} ({c.outcome}): {c.detail}" for c in survivors)
    return text


def replace_between_markers(path: Path, body: str) -> None:
    """Rewrite the text between the markers of ``path``; the rest of the file is left as it is."""
    text = path.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise SystemExit(f"{path} must hold {BEGIN} and {END} once each")
    head, rest = text.split(BEGIN)
    tail = rest.split(END)[1]
    path.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, nargs="+",
                        help="pytest --junitxml reports of tests/test_gate_mutations.py (one run, or its parts)")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--details", type=Path, default=ROOT / "docs" / "export.md")
    args = parser.parse_args(argv)
    cases = [case for report in args.reports for case in read_report(report)]
    if not cases:
        print(f"{', '.join(map(str, args.reports))}: no mutation case; nothing written", file=sys.stderr)
        return 1
    replace_between_markers(args.readme, readme_table(cases))
    replace_between_markers(args.details, details_table(cases))
    print(_totals(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
