"""``python -m profiling accuracy MODEL... --data DIR``: top-1/top-5 of each form and artifact, into the store.

For each model: the eval-mode training form (the reference), the deploy form, and one artifact per
``--formats`` entry (found under ``--artifacts`` when its manifest names the same model, format,
precision, size and ``--weights``, else exported now from the very network evaluated), plus any
``--artifact PATH`` given, all on the same decoded images. The rows land in the results store's
``accuracy`` table in one transaction per model, after the model's whole evaluation: an error or
Ctrl-C leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from rich.markup import escape
from rich.table import Table

import models
import reparam
from export.artifact import Artifact, git_commit
from export.capabilities import CAPABILITIES
from mobilelat.console import Console, add_output_flags
from models.preprocess import preprocess_file
from profiling.accuracy import AccuracyResult, Target, artifact_from_path, artifact_target, evaluate, torch_forward
from models.registry import resolve_name
from profiling.artifacts import DEFAULT_ARTIFACTS, EXPORTERS, find_artifact, probe_label, probe_model
from profiling.cli.common import CliError, add_input_size_argument, split_list
from profiling.dataset import iter_batches, load_dataset
from profiling.report_accuracy import INT8_DROP_FLAG
from profiling.result import host_device, new_run_id
from profiling.store import Store

HELP = "top-1/top-5 of the training form, the deploy form and each artifact on labelled images (stored)"
FORMATS = ("torch", "onnx", "tflite", "coreml")
PRECISIONS = ("fp32", "fp16", "int8_dynamic", "int8_full")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL", help="registry names (see `python -m models list`)")
    parser.add_argument("--data", type=Path, help="labelled images: a folder of class folders (synset ids or "
                                                  "class indices) or a path,label list (.csv/.txt)")
    parser.add_argument("--weights", help="local checkpoint to evaluate (default: the model's probe weights, "
                        "seeded from its name, as `python -m export` without --weights)")
    parser.add_argument("--formats", default="torch,onnx", help=f"comma-separated, from {', '.join(FORMATS)}; "
                        "torch = the eval-mode training form and the deploy form")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="precision of the artifacts")
    parser.add_argument("--artifact", action="append", type=Path, default=[], metavar="PATH",
                        help="also evaluate this exported file (its manifest names the model); repeatable")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="where artifacts are found and exported")
    parser.add_argument("--calibration-dir", metavar="DIR", help="int8_full TFLite exports: images to calibrate on")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate N images spread over the data (Core ML: slow)")
    parser.add_argument("--batch-size", type=int, default=64, help="images decoded and run together")
    add_input_size_argument(parser)
    parser.add_argument("--label", default="", help="a label for this run")
    add_output_flags(parser, verbose_flag=False)  # --verbose comes with every subcommand


def _check(args: argparse.Namespace) -> tuple[list[str], list[str], dict[str, list[Artifact]]]:
    """Everything the command can refuse, refused before any model is built."""
    formats = split_list(args.formats, FORMATS, "format")
    explicit: dict[str, list[Artifact]] = {}
    for path in args.artifact:
        artifact = artifact_from_path(path)
        explicit.setdefault(artifact.model, []).append(artifact)
    names = [resolve_name(name) for name in args.models] or list(explicit)
    if not names:
        raise CliError("name at least one MODEL (or an --artifact PATH); `python -m models list` shows them")
    for name in names:
        models.model_spec(name)  # an unknown name lists the closest ones
    unknown = sorted(set(explicit) - set(names))
    if unknown:
        raise CliError(f"--artifact for {', '.join(unknown)}, which is not among the models named")
    if args.precision != "fp32" and all(f == "torch" for f in formats) and not explicit:
        raise CliError("--precision applies to artifacts; add onnx, tflite or coreml to --formats")
    refused = [f for f in formats if f != "torch" and args.precision not in CAPABILITIES[f].precisions]
    if refused:
        takes = "; ".join(f"{f} takes {', '.join(CAPABILITIES[f].precisions)}" for f in refused)
        raise CliError(f"--precision {args.precision} cannot be exported to {', '.join(refused)} ({takes}); "
                       f"drop the format or choose another precision")
    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit must be >= 1, got {args.limit}")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.weights is not None and not Path(args.weights).exists():
        raise CliError(f"--weights {args.weights} does not exist")
    if args.calibration_dir is not None and (args.precision != "int8_full" or "tflite" not in formats):
        raise CliError("--calibration-dir is used only by TFLite exports at --precision int8_full")
    if args.calibration_dir is not None and not Path(args.calibration_dir).is_dir():
        raise CliError(f"--calibration-dir {args.calibration_dir} is not a folder")
    return names, formats, explicit


def _weights_label(name: str, args: argparse.Namespace) -> str:
    """What the weights are called in manifests and result rows: the checkpoint path, or ``probe:<seed>``."""
    return str(args.weights) if args.weights is not None else probe_label(name)


def _artifact_for(name: str, format_name: str, args: argparse.Namespace, network: torch.nn.Module,
                  spec: models.ModelSpec, console: Console) -> Artifact:
    """A matching artifact on disk exported from the same weights, or one exported now from ``network``."""
    size = (spec.input_size[1], spec.input_size[2])
    weights = _weights_label(name, args)
    found = find_artifact(args.artifacts, name, format_name, args.precision, size)
    if found is not None and found.options.get("weights") == weights:
        return found
    options = {"precision": args.precision, "quiet": True, "weights": weights, "input_size": size}
    if format_name == "tflite" and args.calibration_dir:
        options["calibration_dir"] = args.calibration_dir
    with console.stage(f"export {name} to {format_name}/{args.precision}"):
        return EXPORTERS[format_name](network, spec, Path(args.artifacts), **options)


def _targets(name: str, formats: list[str], explicit: list[Artifact], args: argparse.Namespace,
             console: Console) -> tuple[list[Target], models.ModelSpec]:
    """The reference (training form), the deploy form, and the artifacts, for one model."""
    spec = models.model_spec(name)
    if args.input_size is not None:
        spec = spec.with_input_size(*args.input_size)
    if args.weights is None:  # as `python -m export` without --weights: every layer reaches the logits
        network = probe_model(name)[0].eval()
    else:
        network = models.create_model(name, weights=args.weights).eval()
    targets = [Target("training", "torch", "fp32", "torch", torch_forward(network))]
    if "torch" in formats:
        targets.append(Target("deploy", "torch", "fp32", "torch",
                              torch_forward(reparam.reparameterize(network, warn_untrained=False))))
    for format_name in (f for f in formats if f != "torch"):
        targets.append(artifact_target(_artifact_for(name, format_name, args, network, spec, console)))
    for artifact in explicit:
        shape = artifact.input_shape
        hw = tuple(shape[1:3]) if artifact.input_layout == "NHWC" else tuple(shape[-2:])
        if hw != (spec.input_size[1], spec.input_size[2]):
            raise CliError(f"--artifact {artifact.path} takes {hw[0]}x{hw[1]} images; "
                           f"pass --input-size {hw[0]}x{hw[1]} to evaluate it")
        targets.append(artifact_target(artifact))
    return targets, spec


def _evaluate_model(name: str, formats: list[str], explicit: list[Artifact], dataset, args: argparse.Namespace,
                    console: Console, run_id: str, commit: str | None) -> list[AccuracyResult]:
    targets, spec = _targets(name, formats, explicit, args, console)
    shape = tuple(spec.input_size)
    total = len(dataset)
    started = time.perf_counter()
    batches = -(-total // args.batch_size)
    with console.progress(batches) as progress:  # one step per batch, images/s in the description
        done = [0]
        progress.update(f"{name}: {len(targets)} target(s), {total} images")

        def on_batch(count: int) -> None:
            done[0] += count
            rate = done[0] / max(time.perf_counter() - started, 1e-9)
            progress.advance()
            if done[0] < total:
                progress.update(f"{name}: {done[0]}/{total} images, {rate:.1f} images/s")
        results = evaluate(name, targets, iter_batches(dataset, lambda path: preprocess_file(path, spec), shape,
                                                       batch_size=args.batch_size),
                           total, on_batch=on_batch, dataset=str(args.data), dataset_sha256=dataset.fingerprint(),
                           input_shape=[1, *shape], crop_pct=spec.crop_pct, interpolation=spec.interpolation,
                           weights=_weights_label(name, args), run_id=run_id,
                           git_commit=commit)
    wall_s = time.perf_counter() - started
    for result in results:
        result.extra["wall_s"] = round(wall_s, 3)
        result.extra["device"] = host_device().name
    return results


def accuracy_table(rows: list[dict], title: str) -> Table:
    """Accuracy rows (``AccuracyResult.to_dict()`` or ``Store.query_accuracy``) as a rich table; an int8 drop
    over INT8_DROP_FLAG points in red."""
    table = Table(title=title)
    for column, justify in (("id", "right"), ("model", "left"), ("target", "left"), ("runtime", "left"),
                            ("top-1 %", "right"), ("top-5 %", "right"), ("agree %", "right"),
                            ("mean |dev|", "right"), ("max |dev|", "right"), ("drop", "right"),
                            ("img/s", "right"), ("images", "right"), ("skipped", "right")):
        table.add_column(column, justify=justify)
    for r in rows:
        target = f"{r['format']}/{r['precision']}" + (f" ({r['form']})" if r["format"] == "torch" else "")
        drop = f"{r['top1_drop']:+.2f}"
        if r["precision"].startswith("int8") and r["top1_drop"] > INT8_DROP_FLAG:
            drop = f"[red]{drop} (>{INT8_DROP_FLAG:g})[/red]"
        table.add_row(str(r["id"] or ""), r["model"], target, r["runtime"], f"{r['top1']:.2f}", f"{r['top5']:.2f}",
                      f"{r['agreement']:.2f}", f"{r['mean_abs_dev']:.2e}", f"{r['max_abs_dev']:.2e}", drop,
                      f"{r['images_per_s']:.1f}", str(r["images"]), str(r["skipped"]))
    return table


def main(args: argparse.Namespace, console: Console) -> int:
    names, formats, explicit = _check(args)
    num_classes = min(models.model_spec(name).num_classes for name in names)
    dataset = load_dataset(args.data, num_classes=num_classes).limited(args.limit)
    run_id, commit = new_run_id(), git_commit()
    command = "python -m profiling " + " ".join(getattr(args, "argv", []))
    stored: list[AccuracyResult] = []
    with Store(args.db) as store:  # opened (and migrated) before the work: a bad --db fails first
        for name in names:
            results = _evaluate_model(name, formats, explicit.get(name, []), dataset, args, console, run_id, commit)
            store.insert_accuracy(results, label=args.label, command=command, device_name=host_device().name)
            stored += results
    skipped = stored[0].skipped if stored else 0
    if args.json:
        console.emit_json({"run_id": run_id, "db": str(args.db), "dataset": str(args.data), "images": len(dataset),
                           "skipped": skipped, "results": [r.to_dict() for r in stored]})
        return 0
    console.print(accuracy_table([r.to_dict() for r in stored],
                                 f"accuracy on {stored[0].dataset} ({stored[0].images} images)"))
    if skipped:
        first = stored[0].extra["skipped_files"][0]
        console.print(escape(f"{skipped} file(s) could not be decoded and count as misses "
                             f"(first: {first['path']}: {first['reason']})"))
    console.print(f"stored {len(stored)} accuracy row(s) in {args.db}, run {run_id}")
    return 0
