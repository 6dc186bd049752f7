"""What an export shows a person once it is done: a one-screen summary, or its JSON record.

Progress while it runs (stage lines with their times) goes through ``mobilelat.console.Console``.
"""
from __future__ import annotations

from rich.table import Table

from export.artifact import Artifact


def summary_table(artifact: Artifact) -> Table:
    """One screen: where it is, how big, how close to the eager model, how long it took."""
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
    table.add_row("weights", artifact.options.get("weights") or "as given (no checkpoint named)")
    if parity.get("tolerance", {}).get("rtol") is not None:
        table.add_row("parity", f"passed: max abs error {parity['max_abs_error']:.3g} on {parity['inputs']} inputs "
                                f"(vs deploy {parity['max_abs_error_vs_deploy']:.3g})")
    else:
        agreement = ", ".join(f"{k} {v:.0%}" for k, v in parity["top1_agreement"].items())
        table.add_row("parity", f"passed: top-1 agreement {agreement}; min cosine {parity['min_cosine']:.4f}")
    shares = parity.get("input_share") or {}
    if shares:
        text = "model's weights " + ", ".join(f"{k} {v:.2%}" for k, v in shares.items())
        probe = parity.get("probe")
        if probe:
            text += f"; probe weights (seed {probe['seed']}) " + ", ".join(
                f"{k} {v:.1%}" for k, v in probe["input_share"].items())
        table.add_row("input share", text)
    table.add_row("time", f"{artifact.export_seconds:.1f} s (convert {artifact.options.get('convert_seconds', 0):.1f} s)")
    table.add_row("sha256", artifact.sha256[:16] + "...")
    return table


def artifact_record(artifact: Artifact) -> dict:
    """The artifact for ``--json``: paths, size, hash, parity figures, times."""
    return {"model": artifact.model, "format": artifact.format, "precision": artifact.precision,
            "path": str(artifact.path), "manifest": str(artifact.manifest_path), "sha256": artifact.sha256,
            "size_bytes": artifact.size_bytes, "input_shape": artifact.input_shape,
            "input_layout": artifact.input_layout, "reparameterized": artifact.reparameterized,
            "weights": artifact.options.get("weights"), "params": artifact.params, "macs": artifact.macs,
            "parity": artifact.parity, "export_seconds": artifact.export_seconds,
            "convert_seconds": artifact.options.get("convert_seconds")}
