"""``python -m models``: list the registry, show one model in full (``--json``: one JSON document),
convert a checkpoint to our layout, or predict the top-5 classes of images (``predict``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from rich.markup import escape
from rich.table import Table

from mobilelat.cli import ArgumentParser, run_cli
from mobilelat.console import Console, add_output_flags
from mobilelat.errors import UsageError
from mobilelat.paths import check_output_file
from models import registry
from models.complexity import count_macs, count_params
from models.imagenet import class_name, classes
from models.preprocess import preprocess_file
from models.registry import create_model, list_models, model_spec
from profiling.accuracy import artifact_from_path, artifact_target, torch_forward


def _measure(name: str) -> tuple[int, int]:
    spec = model_spec(name)
    model = create_model(name).eval()
    return count_params(model), count_macs(model, spec.input_shape())


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _record(name: str, params: int, macs: int) -> dict:
    """One model for ``--json``: its spec fields, the measured counts at its own input size, the
    checkpoints that load into it and its other names."""
    spec = model_spec(name)
    return {**spec.to_dict(), "measured_params": params, "measured_macs": macs,
            "checkpoints": checkpoint_sources(spec.name), "also_named": registry.aliases_of(spec.name)}


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    names = list_models(args.pattern)
    if not names:
        raise UsageError(f"no model matches {args.pattern!r}; patterns are shell-style, e.g. 'repvit_*' "
                         f"(`python -m models list` shows all)")
    table = Table(title=f"mobilelat models ({len(names)})")
    for column in ("name", "params (M)", "GMACs", "input", "top-1", "published latency"):
        table.add_column(column, justify="left" if column in ("name", "input", "published latency") else "right")
    records = []
    with console.progress(len(names)) as progress:  # building every model takes a while
        for name in names:
            progress.update(f"counting parameters and MACs of {name}")
            spec = model_spec(name)
            params, macs = _measure(name)
            records.append(_record(name, params, macs))
            latency = (f"{spec.published_latency_ms:g} ms ({spec.published_latency_device})"
                       if spec.published_latency_ms else "-")
            table.add_row(name, f"{params / 1e6:.3f}", f"{macs / 1e9:.2f}",
                          "x".join(map(str, spec.input_size[1:])), _fmt(spec.top1, "{:.1f}"), latency)
            progress.advance()
    if console.json_mode:
        console.emit_json(records)
    else:
        console.print(table)
    return 0


def cmd_info(args: argparse.Namespace, console: Console) -> int:
    spec = model_spec(args.name)
    params, macs = _measure(args.name)
    if console.json_mode:
        console.emit_json(_record(args.name, params, macs))
        return 0
    table = Table(title=spec.name, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for field, value in spec.to_dict().items():
        if field == "extra" and not value:
            continue
        table.add_row(field, str(value))
    ref_params = f" (reference {spec.params_m:.3f}M)" if spec.params_m else ""
    ref_macs = f" (reference {spec.gmacs:.2f})" if spec.gmacs else ""
    table.add_row("measured params", f"{params:,} = {params / 1e6:.3f}M{ref_params}")
    table.add_row("measured GMACs", f"{macs / 1e9:.3f}{ref_macs} at {spec.input_shape()}")
    table.add_row("checkpoints", "\n".join(checkpoint_sources(spec.name)))
    aliases = registry.aliases_of(spec.name)
    if aliases:
        table.add_row("also named", ", ".join(aliases))
    console.print(table)
    return 0


def checkpoint_sources(name: str) -> list[str]:
    """One line per checkpoint layout that loads into ``name``: the source's name for it and where it comes from."""
    lines = []
    for layout in getattr(registry.family_module(name), "CHECKPOINT_LAYOUTS", ()):
        if layout.name == "ours" and not layout.names:
            lines.append(f"ours: {name} ({layout.origin})")
        elif name in layout.names:
            lines.append(f"{layout.name}: {layout.names[name]} ({layout.origin})")
    return lines


def cmd_convert(args: argparse.Namespace, console: Console) -> int:
    check_output_file(args.out)  # before reading a checkpoint of hundreds of MB
    try:
        loaded = registry.convert_weights(args.name, args.source, args.out)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from error  # the source path: the user's to fix
    size_mb = Path(args.out).stat().st_size / 1e6
    name = registry.resolve_name(args.name, note=False)
    console.print(f"wrote {escape(str(args.out))} ({size_mb:.1f} MB): {name} in our layout, from the "
                  f"{loaded.layout} layout of {escape(str(args.source))}; load it with "
                  f"models.create_model({name!r}, weights={str(args.out)!r})", soft_wrap=True)
    return 0


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits.astype(np.float64) - logits.max())
    return shifted / shifted.sum()


def cmd_predict(args: argparse.Namespace, console: Console) -> int:
    """Top-5 classes and probabilities of each image: the registry model (``--weights``) or an artifact."""
    name = registry.resolve_name(args.name)
    spec = model_spec(name)
    missing = [str(path) for path in args.images if not path.is_file()]
    if missing:
        raise UsageError(f"no such image file: {', '.join(missing)}")
    if args.artifact is not None:
        artifact = artifact_from_path(args.artifact)
        if artifact.model != name:
            raise UsageError(f"--artifact {args.artifact} is an export of {artifact.model}, not {name}")
        shape = artifact.input_shape
        height, width = (shape[1], shape[2]) if artifact.input_layout == "NHWC" else (shape[-2], shape[-1])
        spec = spec.with_input_size(height, width)
        forward, source = artifact_target(artifact).forward, f"{artifact.format}/{artifact.precision} {args.artifact}"
    else:
        if args.weights is None:
            console.note("[yellow]no --weights: a randomly initialised model; its predictions mean nothing[/yellow]")
        torch.manual_seed(0)  # without --weights, the same random model every time
        forward, source = torch_forward(create_model(name, weights=args.weights).eval()), "torch"
    records = []
    for path in args.images:
        try:
            pixels = preprocess_file(path, spec)
        except (OSError, ValueError, SyntaxError) as error:
            raise UsageError(f"{path}: not an image Pillow can read ({error})") from None
        probabilities = _softmax(np.asarray(forward(pixels[None]), dtype=np.float32).reshape(-1))
        top = np.argsort(-probabilities, kind="stable")[:5]
        records.append({"image": str(path), "top5": [
            {"index": int(i), "synset": classes()[i].synset if spec.num_classes == 1000 else None,
             "name": class_name(int(i), spec.num_classes), "probability": float(probabilities[i])} for i in top]})
    if args.json:
        console.emit_json({"model": name, "source": source, "weights": args.weights, "predictions": records})
        return 0
    for record in records:
        table = Table(title=f"{escape(record['image'])} ({name}, {escape(source)})")
        for column, justify in (("#", "right"), ("class", "left"), ("synset", "left"), ("probability", "right")):
            table.add_column(column, justify=justify)
        for rank, entry in enumerate(record["top5"], start=1):
            table.add_row(str(rank), escape(entry["name"]), entry["synset"] or f"{entry['index']}",
                          f"{entry['probability']:.4f}")
        console.print(table)
    return 0


COMMANDS = {"list": cmd_list, "info": cmd_info, "convert-weights": cmd_convert, "predict": cmd_predict}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m models", description="Inspect the model registry.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="table of registered models (params, GMACs, input, latency)")
    p_list.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 'repvit_*'")
    add_output_flags(p_list)
    p_info = sub.add_parser("info", help="one model in full: spec, figures, the checkpoints that load into it")
    p_info.add_argument("name")
    add_output_flags(p_info)
    p_convert = sub.add_parser(
        "convert-weights", help="write a checkpoint (timm, official or ours) in our layout as safetensors, once",
        epilog="example: python -m models convert-weights repvit_m1 ~/.cache/huggingface/hub/"
               "models--timm--repvit_m1.dist_in1k --out repvit_m1.safetensors")
    p_convert.add_argument("name", help="registered model name (or timm's name for it)")
    p_convert.add_argument("source", help="checkpoint file (.pth/.bin/.safetensors) or hub snapshot folder")
    p_convert.add_argument("--out", required=True, type=Path, help="the safetensors file to write (written atomically)")
    add_output_flags(p_convert, json_flag=False)
    p_predict = sub.add_parser("predict", help="top-5 ImageNet classes and probabilities of images, from the model "
                                               "(--weights) or an exported artifact (--artifact)")
    p_predict.add_argument("name", help="registered model name (or timm's name for it)")
    p_predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (any mode Pillow reads)")
    p_predict.add_argument("--weights", help="local checkpoint (default: random initialization, said so)")
    p_predict.add_argument("--artifact", type=Path, metavar="PATH",
                           help="an exported .onnx/.tflite/.mlpackage of this model to run instead of torch")
    add_output_flags(p_predict)
    return parser


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    console = Console.from_args(args, command=f"models-{args.command}")
    with console.capture():
        return COMMANDS[args.command](args, console)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns its exit status (2: an unknown name, a pattern nothing matches, a checkpoint
    that cannot be read or does not fit, an output that cannot be written)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
