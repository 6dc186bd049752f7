"""Regenerate the model zoo table in docs/models.md from the registry, so it cannot go stale.

The table sits between the ``<!-- zoo:begin -->`` and ``<!-- zoo:end -->`` markers and holds what
``python -m models list`` shows: for every registered model, parameters and MACs measured on the
training form as built (``models.complexity``), the input size, and the published top-1 and
latency its ``ModelSpec`` records. Everything outside the markers is left as it is.

    python docs/gen_zoo.py                    # rewrite the table in docs/models.md (make docs)
    python docs/gen_zoo.py --check            # exit 1 if the committed table is stale
    python docs/gen_zoo.py path/to/copy.md    # rewrite another file with the same markers
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# The table must describe the checkout this script lives in, not whichever checkout an editable
# install of mobilelat happens to point at.
sys.path.insert(0, str(ROOT))

from models import create_model, list_models, model_spec  # noqa: E402
from models.complexity import count_macs, count_params  # noqa: E402

BEGIN = "<!-- zoo:begin -->"
END = "<!-- zoo:end -->"
DEFAULT_PATH = ROOT / "docs" / "models.md"
HEADER = ("| name | params (M) | GMACs | input | top-1 | published latency |\n"
          "|---|---:|---:|---|---:|---|\n")


@dataclass(frozen=True)
class ZooRow:
    """One registered model as the table shows it."""

    name: str  # registry name
    params: int  # measured parameters of the training form
    macs: int  # measured multiply-accumulates of one forward pass at the spec's input shape, batch 1
    input_hw: tuple[int, int]  # spatial input size (height, width), pixels
    top1: float | None  # published ImageNet-1k top-1, percent; None when the spec records none
    published_latency_ms: float | None  # latency the paper reports, milliseconds
    published_latency_device: str | None  # device and runtime of that latency

    def markdown(self) -> str:
        top1 = "-" if self.top1 is None else f"{self.top1:.1f}"
        latency = (f"{self.published_latency_ms:g} ms, {self.published_latency_device}"
                   if self.published_latency_ms else "-")
        height, width = self.input_hw
        return (f"| {self.name} | {self.params / 1e6:.3f} | {self.macs / 1e9:.2f} | {height}x{width} "
                f"| {top1} | {latency} |")


def zoo_rows() -> list[ZooRow]:
    """Build every registered model once and measure it (a few seconds for the whole zoo)."""
    rows = []
    for name in list_models():
        spec = model_spec(name)
        model = create_model(name).eval()
        rows.append(ZooRow(name=name, params=count_params(model), macs=count_macs(model, spec.input_shape()),
                           input_hw=(spec.input_size[1], spec.input_size[2]), top1=spec.top1,
                           published_latency_ms=spec.published_latency_ms,
                           published_latency_device=spec.published_latency_device))
    return rows


def render_table(rows: list[ZooRow]) -> str:
    return HEADER + "".join(row.markdown() + "\n" for row in rows)


def split_at_markers(text: str, source: str = "the document", begin: str = BEGIN, end: str = END,
                     what: str = "the zoo table") -> tuple[str, str]:
    """The text before the begin marker and after the end marker; a clear error if they are not there once each."""
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"{source} must hold {begin} and {end} exactly once each "
                         f"(found {text.count(begin)} and {text.count(end)}); put them around {what}")
    head, rest = text.split(begin)
    if end not in rest:
        raise ValueError(f"{source}: {end} comes before {begin}; swap them")
    return head, rest.split(end)[1]


def replace_table(text: str, table: str, source: str = "the document", begin: str = BEGIN, end: str = END,
                  what: str = "the zoo table") -> str:
    """``text`` with everything between the markers replaced by ``table`` (one blank line each side)."""
    head, tail = split_at_markers(text, source, begin, end, what)
    return f"{head}{begin}\n\n{table}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/gen_zoo.py", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH,
                        help="markdown file holding the zoo markers (default: docs/models.md)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if the table differs from the registry's")
    args = parser.parse_args(argv)
    # The counts do not depend on threads; one thread keeps a busy small machine from spinning
    # (the whole zoo took 67 s with torch's default threads on a loaded 2-core box, 17 s with one).
    torch.set_num_threads(1)
    return write_table(args.path, lambda: render_table(zoo_rows()), args.check)


def write_table(path: Path, render, check: bool, begin: str = BEGIN, end: str = END,
                what: str = "the zoo table") -> int:
    """Rewrite the table between the markers of ``path`` with ``render()`` (or, with ``check``, only say
    whether it is stale): 0 done or current, 1 stale (``check``), 2 no markers or an unreadable file."""
    markers = {"begin": begin, "end": end, "what": what}
    try:
        text = path.read_text()
        split_at_markers(text, str(path), **markers)  # before the slow part: a file without markers fails at once
        updated = replace_table(text, render(), source=str(path), **markers)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if check:
        if updated != text:
            print(f"{path}: {what} is stale; run `make docs`", file=sys.stderr)
            return 1
        return 0
    if updated != text:
        path.write_text(updated)
        print(f"{path}: {what} rewritten")
    else:
        print(f"{path}: {what} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
