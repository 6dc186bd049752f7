"""Write the parity gate's tolerance table in docs/export.md from ``export.parity.TOLERANCES``.

The table sits between ``<!-- tolerances:begin -->`` and ``<!-- tolerances:end -->``: one row per
(format, precision) the gate knows, with its bound, what top-1 and cosine must be, how the bound
grows with a model's own sensitivity to rounding, whether the conversion path is also gated at fp32
(every reduced precision of a format that converts at fp32), and the reason the table gives. Everything
outside the markers is left as it is (``make docs`` runs it; tests/test_docs.py fails when stale).

    python docs/gen_tolerances.py            # rewrite the table in docs/export.md
    python docs/gen_tolerances.py --check    # exit 1 if the committed table is stale
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the table describes this checkout, not an installed copy
sys.path.insert(0, str(ROOT / "docs"))

from export.capabilities import capability  # noqa: E402
from export.parity import TOLERANCES, Tolerance  # noqa: E402
from gen_zoo import write_table  # noqa: E402

BEGIN = "<!-- tolerances:begin -->"
END = "<!-- tolerances:end -->"
DEFAULT_PATH = ROOT / "docs" / "export.md"
HEADER = ("| format | precision | rtol (x spread) | grows with the model's rounding gap | top-1 | cosine "
          "| the same path at fp32 | reason |\n"
          "|---|---|---:|---|---|---:|---|---|\n")


def _number(value: float) -> str:
    """1e-4 rather than 0.0001, 0.03 as it is."""
    text = f"{value:.0e}" if value < 1e-3 else f"{value:g}"
    return text.replace("e-0", "e-").replace("e+0", "e")


def _row(format_name: str, precision: str, tolerance: Tolerance) -> str:
    rtol = "-" if tolerance.rtol is None else _number(tolerance.rtol)
    if tolerance.atol:
        rtol += f" + {_number(tolerance.atol)} abs"
    gain = "-" if tolerance.rounding_gain is None else f"at least {tolerance.rounding_gain:g} x gap"
    if tolerance.min_top1_agreement is None:
        top1 = "not judged"
    elif tolerance.rtol is not None:
        top1 = "every input, beyond ties" if tolerance.min_top1_agreement == 1.0 else f">= {tolerance.min_top1_agreement:g}"
    else:
        top1 = (f">= {tolerance.min_top1_agreement:g}, ties within {tolerance.tie_rtol:g} x spread; "
                f"not judged on probe weights")
    cosine = "-" if tolerance.min_cosine is None else f">= {tolerance.min_cosine:g}"
    reason = tolerance.reason.replace("|", "\\|")
    path = (f"gated too (rtol {_number(TOLERANCES[(format_name, 'fp32')].rtol)})"
            if precision != "fp32" and "fp32" in capability(format_name).precisions else "-")
    return f"| {format_name} | {precision} | {rtol} | {gain} | {top1} | {cosine} | {path} | {reason} |\n"


def render_table() -> str:
    return HEADER + "".join(_row(f, p, t) for (f, p), t in TOLERANCES.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/gen_tolerances.py", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH,
                        help="markdown file holding the tolerance markers (default: docs/export.md)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the table is stale")
    args = parser.parse_args(argv)
    return write_table(args.path, render_table, args.check, BEGIN, END, "the tolerance table")


if __name__ == "__main__":
    sys.exit(main())
