"""``python -m reparam NAME``: reparameterize a registered model, check it, print what changed.

Builds the model (``--weights PATH`` loads a local checkpoint), folds it with
``reparam.reparameterize``, checks on seeded inputs that the deploy form gives the training
form's eval-mode outputs (max abs error <= 1e-5 x max |output|), prints the summary, and with
``--out PATH`` saves the deploy state dict, which ``models.create_model(NAME, deploy=True,
weights=PATH)`` loads again. The file is written only after the check passes, and atomically.

``--out`` is checked before any work (a folder, or a place nothing can be written, is refused);
an interrupted save leaves neither a temporary file nor a folder it created. ``--input-size``
takes N or HxW (``mobilelat.sizes``).

Exit codes (``mobilelat.errors``): 0 done, 1 the exactness check failed (nothing written), 2 bad
input (unknown model, checkpoint that does not fit, unwritable output, a bad size), 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

import torch
from rich.markup import escape
from rich.table import Table

import models
import reparam
from mobilelat.cli import ArgumentParser, run_cli
from mobilelat.console import Console, add_output_flags
from mobilelat.errors import UsageError
from mobilelat.paths import check_output_file, make_dirs, remove_if_empty
from mobilelat.sizes import input_size_type
from reparam.summary import ReparamSummary

RELATIVE_TOLERANCE = 1e-5  # max abs error allowed, as a fraction of max |training-form output|


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m reparam",
        description="Reparameterize a registered model into its deploy form (BatchNorms folded, branches "
                    "merged, layer scales folded), check the outputs are unchanged, and optionally save it.",
        epilog="example: python -m reparam repvit_m1 --weights repvit_m1.pth --out repvit_m1_deploy.pt")
    parser.add_argument("name", help="registered model name (python -m models list)")
    parser.add_argument("--weights", metavar="PATH", help="local training-form checkpoint: .pth/.bin/.safetensors or "
                        "a Hugging Face hub snapshot folder, in our, timm's or the official layout; default: random "
                        "initialization")
    parser.add_argument("--out", type=Path, help="save the deploy state dict here (torch.save)")
    parser.add_argument("--input-size", type=input_size_type, metavar="HxW",
                        help="input size for the check, N or HxW (default: the model's own)")
    parser.add_argument("--check-inputs", type=int, default=3, metavar="N",
                        help="seeded inputs for the exactness check (default 3; 0 skips the check)")
    add_output_flags(parser, json_flag=False)
    return parser


def check_outputs(training: torch.nn.Module, deploy: torch.nn.Module, inputs: list[torch.Tensor]) -> tuple[float, float]:
    """(max abs error, max |output|) of deploy vs training form in eval mode over ``inputs``."""
    training = training.eval()
    worst_error, largest = 0.0, 0.0
    with torch.no_grad():
        for x in inputs:
            reference, result = training(x), deploy(x)
            worst_error = max(worst_error, float((result - reference).abs().max()))
            largest = max(largest, float(reference.abs().max()))
    return worst_error, largest


def save_atomically(state: dict, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: the file appears whole or not at all;
    folders made for it are removed again if the save fails or is interrupted."""
    created = make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        remove_if_empty(created)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _table(name: str, result: ReparamSummary) -> Table:
    table = Table(title=f"{name}: training form -> deploy form")
    for column, justify in (("", "left"), ("before", "right"), ("after", "right")):
        table.add_column(column, justify=justify)
    for row in result.rows():
        table.add_row(*row)
    return table


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    console = Console.from_args(args, command="reparam")
    if args.out is not None:
        check_output_file(args.out)  # before any work
    spec = models.model_spec(args.name)
    with console.capture():
        try:
            training = models.create_model(args.name, weights=args.weights)
        except FileNotFoundError as error:
            raise UsageError(str(error)) from error  # the --weights path: the user's to fix
        if args.input_size:
            spec = spec.with_input_size(*args.input_size)
        with console.stage(f"reparameterize {args.name}"):
            deploy = reparam.reparameterize(training, warn_untrained=False)  # the summary's notes say it
        result = reparam.summary(training, deploy)
        console.print(_table(args.name, result))
        for note in result.notes():
            console.print(f"note: {escape(note)}")

        if args.check_inputs > 0:
            with console.stage(f"check outputs on {args.check_inputs} seeded input(s)"):
                error, largest = check_outputs(training, deploy, spec.sample_inputs(args.check_inputs, seed=0))
            allowed = RELATIVE_TOLERANCE * largest
            verdict = "[green]exact[/green]" if error <= allowed else "[red]NOT exact[/red]"
            console.print(f"check: max abs error {error:.3g} (allowed {allowed:.3g} = {RELATIVE_TOLERANCE:g} x max "
                          f"|output| {largest:.3g}) over {args.check_inputs} input(s) of shape "
                          f"{tuple(spec.input_shape())}: {verdict}")
            if error > allowed:
                console.print("[red]the deploy form does not reproduce the training form; nothing was written[/red]")
                return 1

        if args.out is not None:
            with console.stage(f"save the deploy state dict to {args.out}"):
                save_atomically(deploy.state_dict(), args.out)
            console.print(f"saved the deploy state dict to {escape(str(args.out))} "
                          f"({args.out.stat().st_size / 1e6:.1f} MB); load it with "
                          f"models.create_model({args.name!r}, deploy=True, weights={str(args.out)!r})")
    if console.log_path and not console.quiet:
        console.note(f"[dim]{escape(console.log_line())}[/dim]")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line; returns its exit status."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
