"""ExecuTorch export (``.pte``): torch.export, lowered to a delegate, behind the parity gate.

``python -m export.executorch repvit_m1`` writes ``artifacts/repvit_m1/repvit_m1.pte`` (XNNPACK, fp32).

- Conversion: ``torch.export.export`` of the deploy model at the spec's input shape (batch 1),
  ``executorch.exir.to_edge_transform_and_lower`` with the backend's partitioner, then
  ``.to_executorch()``; its ``.buffer`` is the ``.pte`` file.
- ``--backend``: ``xnnpack`` (default; the CPU delegate ExecuTorch ships for Android and iOS),
  ``coreml`` (the Core ML delegate: coremltools converts each delegated subgraph into an ML
  program stored inside the ``.pte``), ``portable`` (no delegate: ExecuTorch's portable kernels).
  The backend other than xnnpack goes into the file name (``repvit_m1_coreml.pte``).
- Precision: ``fp32``; ``fp16`` (XNNPACK: the model is cast to half inside the graph, input and
  output stay float32; Core ML: fp16 compute precision); ``int8_dynamic`` and ``int8_full``
  (XNNPACK only) through the PT2E flow with ExecuTorch's ``XNNPACKQuantizer`` (symmetric,
  per-channel weights): dynamic quantizes activations on the fly, full (static) calibrates
  activation ranges on the same images TFLite's int8_full uses (``--calibration-dir`` /
  ``--calibration-count``, seeded synthetic images by default).
- Manifest: ``options["delegation"]`` records, from ExecuTorch's own
  ``devtools.backend_debug.get_delegation_info``, the delegated subgraphs, the node counts and, per
  op, how many occurrences the delegate took and how many fell back to portable kernels.
- Parity: the ExecuTorch Python runtime (``executorch.runtime``, whose pybindings carry the XNNPACK
  and portable kernels). The Core ML delegate cannot run outside Apple platforms: on Linux its
  delegated ML program (unpacked from the lowered module) is run by the project's numpy Core ML
  evaluator (``export/coreml/evaluator.py``), which needs the whole graph in one Core ML subgraph.
"""
from __future__ import annotations

import copy
import json
import logging
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.artifact import Artifact
from export.capabilities import options_for, require
from export.common import export_model
from export.coreml.evaluator import MILEvalError, MILEvaluator
from export.errors import ExportError
from export.options import ExecuTorchOptions
from export.tflite import calibration_images
from models import ModelSpec

# nodes that only unpack a delegate's outputs: they run no kernel, so they are not a fallback
_BOOKKEEPING_OPS = ("getitem", "Total")


class HalfCompute(nn.Module):
    """fp16 weights and compute, float32 input and output (the casts are the graph's first and last ops)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


def _quiet() -> None:
    """ExecuTorch and torchao log per-pass and per-library notes at INFO/WARNING; the log file keeps them."""
    for name in ("executorch", "torchao", "coremltools"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _quantized(model: nn.Module, sample: torch.Tensor, spec: ModelSpec, options: ExecuTorchOptions) -> nn.Module:
    """The PT2E flow: export, annotate with the XNNPACK quantizer, calibrate, convert."""
    require("torchao", "executorch")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                        get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    dynamic = options.precision == "int8_dynamic"
    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
    graph = torch.export.export(model, (sample,)).module()
    prepared = prepare_pt2e(graph, quantizer)
    # dynamic: activation ranges are taken at run time; one pass only records the weights' observers
    images = [sample.numpy()] if dynamic else calibration_images(spec, options)
    for image in images:
        prepared(torch.from_numpy(image))
    return convert_pt2e(prepared)


def _partitioners(options: ExecuTorchOptions) -> list:
    if options.backend == "portable":
        return []
    if options.backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return [XnnpackPartitioner()]
    coremltools = require("coremltools", "executorch")
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    precision = coremltools.precision.FLOAT16 if options.precision == "fp16" else coremltools.precision.FLOAT32
    specs = CoreMLBackend.generate_compile_specs(minimum_deployment_target=coremltools.target.iOS16,
                                                 compute_precision=precision)
    return [CoreMLPartitioner(compile_specs=specs)]


def delegation_summary(graph_module: torch.fx.GraphModule, backend: str) -> dict:
    """Ops the delegate took and ops that fell back to portable kernels, from ExecuTorch's own count."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    table = info.get_operator_delegation_dataframe()
    by_op = {}
    for row in table.itertuples(index=False):
        if row.op_type in _BOOKKEEPING_OPS:
            continue
        by_op[str(row.op_type)] = {"delegated": int(row.occurrences_in_delegated_graphs),
                                   "fallback": int(row.occurrences_in_non_delegated_graphs)}
    return {
        "backend": backend,
        "delegated_subgraphs": int(info.num_delegated_subgraphs),
        "delegated_nodes": int(info.num_delegated_nodes),
        "non_delegated_nodes": int(info.num_non_delegated_nodes),
        "fallback_ops": sorted(op for op, counts in by_op.items() if counts["fallback"]),
        "ops": by_op,
    }


def _delegation_path(tmp_path: Path) -> Path:
    """Where the delegation summary waits between conversion and the manifest."""
    return tmp_path.with_name(tmp_path.name + ".delegation.json")


def _coreml_dir(tmp_path: Path) -> Path:
    """Where the Core ML delegate's ML programs are unpacked for the Linux gate."""
    return tmp_path.with_name(tmp_path.name + ".coreml")


def _unpack_coreml(graph_module: torch.fx.GraphModule, out_dir: Path) -> list[Path]:
    """The ML packages the Core ML delegate stored in its lowered modules, unpacked under ``out_dir``."""
    from executorch.backends.apple.coreml import executorchcoreml

    packages = []
    lowered = [m for _, m in graph_module.named_children() if hasattr(m, "processed_bytes")]
    for index, module in enumerate(lowered):
        target = out_dir / f"delegate_{index}"
        target.mkdir(parents=True, exist_ok=True)
        if not executorchcoreml.unflatten_directory_contents(bytes(module.processed_bytes), str(target)):
            raise ExportError("could not unpack the Core ML delegate's model", format="executorch",
                              hint="report it: executorchcoreml.unflatten_directory_contents failed")
        found = sorted(target.rglob("*.mlpackage"))
        if not found:
            names = sorted(p.name for p in target.iterdir())
            raise ExportError(f"no .mlpackage in the Core ML delegate's data ({names})",
                              format="executorch", hint="report it: the delegate's layout changed")
        packages.append(found[0])
    return packages


class ExecuTorchFormat:
    """ExecuTorch for the shared wrapper (a ``FormatHandler``)."""

    name = "executorch"

    def convert(self, model: nn.Module, spec: ModelSpec, tmp_path: Path, options: ExecuTorchOptions) -> None:
        """Export, (quantize,) lower to the backend, write the program at ``tmp_path``."""
        require("executorch", "executorch")
        from executorch.exir import to_edge_transform_and_lower

        _quiet()
        sample = spec.sample_inputs(count=1, seed=0)[0]
        if options.precision in ("int8_dynamic", "int8_full"):
            model = _quantized(model, sample, spec, options)
        elif options.precision == "fp16" and options.backend == "xnnpack":
            model = HalfCompute(model).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, (sample,))
            edge = to_edge_transform_and_lower(program, partitioner=_partitioners(options))
        graph_module = edge.exported_program().graph_module
        summary = delegation_summary(graph_module, options.backend)
        _delegation_path(tmp_path).write_text(json.dumps(summary))
        if options.backend == "coreml":
            _unpack_coreml(graph_module, _coreml_dir(tmp_path))
        tmp_path.write_bytes(edge.to_executorch().buffer)

    def run(self, path: Path, inputs: list[np.ndarray], spec: ModelSpec,
            options: ExecuTorchOptions) -> list[np.ndarray]:
        """Outputs on normalized NCHW float32 inputs, through the ExecuTorch runtime (Core ML: see the module)."""
        if options.backend == "coreml" and "CoreMLBackend" not in registered_backends():
            return self._run_coreml_programs(path, inputs, spec)
        method = load_method(path)
        return [method.execute([torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))])[0].numpy()
                for x in inputs]

    def _run_coreml_programs(self, path: Path, inputs: list[np.ndarray], spec: ModelSpec) -> list[np.ndarray]:
        """The Linux gate of the Core ML delegate: its one ML program on the numpy evaluator."""
        packages = sorted(_coreml_dir(path).glob("delegate_*/**/*.mlpackage"))
        summary_file = _delegation_path(path)
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
        if not packages or summary is None:
            raise ExportError(f"{path.name}: the Core ML delegate runs only on Apple platforms; this runtime has "
                              f"{', '.join(registered_backends())}", format="executorch",
                              hint="run it on macOS/iOS, or gate it here at export time")
        if len(packages) != 1 or summary["fallback_ops"]:
            raise ExportError(
                f"the Core ML delegate took {len(packages)} subgraph(s) and left {summary['fallback_ops']} to portable "
                f"kernels; on Linux the gate runs a graph held whole by one Core ML program", format="executorch",
                failing=(summary["fallback_ops"] or [None])[0],
                hint="use --backend xnnpack here, or export on macOS where the ExecuTorch runtime has Core ML")
        try:
            evaluator = MILEvaluator(packages[0])
            (input_name,), (output_name,) = evaluator.input_names, evaluator.output_names
            return [evaluator.run({input_name: x.astype(np.float32)})[output_name].astype(np.float32) for x in inputs]
        except MILEvalError as error:
            raise ExportError(f"the reference evaluator cannot run the Core ML delegate's program: {error}",
                              format="executorch", failing=getattr(error, "op_type", None),
                              hint="add the op to export/coreml/ops, or gate on macOS") from error

    def tool_versions(self) -> dict[str, str]:
        versions = {"torch": torch.__version__}
        for package in ("executorch", "torchao", "coremltools"):
            try:
                versions[package] = version(package)
            except PackageNotFoundError:
                versions[package] = "not installed"
        return versions

    def io_details(self, path: Path) -> dict:
        return {}  # float32 in, float32 out at every precision: the casts and quantization are inside the graph

    def manifest_details(self, tmp_path: Path) -> dict:
        """What the wrapper adds to the manifest's options: the delegation summary."""
        summary_file = _delegation_path(tmp_path)
        return {"delegation": json.loads(summary_file.read_text())} if summary_file.exists() else {}

    def input_layout(self, options: ExecuTorchOptions) -> str:
        return "NCHW"

    def temp_paths(self, tmp_path: Path) -> list[Path]:
        return [_delegation_path(tmp_path), _coreml_dir(tmp_path)]

    def artifact_variant(self, options: ExecuTorchOptions) -> str | None:
        """The backend in the file name when it is not the default (``_coreml``, ``_portable``)."""
        return None if options.backend == "xnnpack" else options.backend

    def prepare_command_line(self) -> None:
        _quiet()


def registered_backends() -> list[str]:
    """Delegates the installed ExecuTorch Python runtime can run (XnnpackBackend, CoreMLBackend on Apple, ...)."""
    from executorch.extension.pybindings import portable_lib

    return list(portable_lib._get_registered_backend_names())


def set_threads(threads: int) -> None:
    """Size the runtime's threadpool (XNNPACK runs on it); before a program is loaded. 0: leave it as it is."""
    if threads > 0:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(threads)


def thread_count() -> int:
    from executorch.extension.pybindings import portable_lib

    return int(portable_lib._threadpool_get_thread_count())


def load_method(path: str | Path, method: str = "forward"):
    """The program's method, loaded by the ExecuTorch Python runtime."""
    require("executorch", "executorch")
    from executorch.runtime import Runtime

    try:
        return Runtime.get().load_program(Path(path)).load_method(method)
    except RuntimeError as error:
        raise ExportError(f"the ExecuTorch runtime cannot load {path}: {error}", format="executorch",
                          hint="is it a .pte written by this ExecuTorch version?") from error


HANDLER = ExecuTorchFormat()


def export(model: nn.Module, spec: ModelSpec, out_dir: str | Path = "artifacts", **options) -> Artifact:
    """Export ``model`` to ``out_dir/<model>/<model>[_<precision>][_<backend>].pte``.

    ``options``: fields of ``ExecuTorchOptions`` (precision, backend, input_size, calibration_dir, ...).
    """
    return export_model(HANDLER, model, spec, Path(out_dir), options_for("executorch", **options))


if __name__ == "__main__":  # `python -m export.executorch`
    from export.cli import run_format_cli

    sys.exit(run_format_cli(HANDLER))
