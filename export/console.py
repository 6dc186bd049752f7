"""What an export shows a person: a progress line per step and a one-screen summary, or nothing."""
from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

from rich.console import Console as RichConsole
from rich.table import Table

from export.artifact import Artifact


class Console:
    """Progress and the final summary on stderr, or nothing when ``quiet``."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self._console = None if quiet else RichConsole(stderr=True)

    def step(self, text: str) -> AbstractContextManager:
        """A spinner with ``text`` while the block runs."""
        if self._console is None:
            return contextlib.nullcontext()
        return self._console.status(text, spinner="dots")

    def print(self, *objects) -> None:
        if self._console is not None:
            self._console.print(*objects)


def print_summary(artifact: Artifact, console: Console | None = None) -> None:
    """One screen: where it is, how big, how close to the eager model, how long it took."""
    console = console or Console(False)
    if console.quiet:
        return
    parity = artifact.parity
    table = Table(title=f"{artifact.model} -> {artifact.format} ({artifact.precision})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("path", str(artifact.path))
    table.add_row("size", f"{artifact.size_bytes / 1e6:.2f} MB")
    table.add_row("input", f"{artifact.input_name} {artifact.input_shape} {artifact.input_layout}")
    table.add_row("params / MACs", f"{artifact.params / 1e6:.2f} M / "
                                   f"{artifact.macs / 1e9:.3f} G" if artifact.macs >= 0 else f"{artifact.params / 1e6:.2f} M")
    table.add_row("reparameterized", str(artifact.reparameterized))
    if parity.get("tolerance", {}).get("rtol") is not None:
        table.add_row("parity", f"passed: max abs error {parity['max_abs_error']:.3g} on {parity['inputs']} inputs "
                                f"(vs deploy {parity['max_abs_error_vs_deploy']:.3g})")
    else:
        agreement = ", ".join(f"{k} {v:.0%}" for k, v in parity["top1_agreement"].items())
        table.add_row("parity", f"passed: top-1 agreement {agreement}; min cosine {parity['min_cosine']:.4f}")
    table.add_row("time", f"{artifact.export_seconds:.1f} s (convert {artifact.options.get('convert_seconds', 0):.1f} s)")
    table.add_row("sha256", artifact.sha256[:16] + "...")
    console.print(table)
