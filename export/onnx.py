"""ONNX export: a static, checked, slimmed graph behind the parity gate (onnxruntime, CPU).

``python -m export.onnx repvit_m1`` writes ``artifacts/repvit_m1/repvit_m1.onnx``.

Exporter choice: torch 2.13's ``torch.onnx.export`` defaults to the ``torch.export``-based
("dynamo") exporter, which needs ``onnxscript`` (not a dependency here) and, for these
convolutional backbones, gives no better graph. We call the TorchScript exporter
(``dynamo=False``): it traces to a static graph at the sample's shape, folds constants, and takes
~2 s for repvit_m0_6. The graph is then checked with ``onnx.checker`` and cleaned with onnxslim
(constant folding, dead nodes, shape inference), which leaves a graph of Conv/Add/Mul/Gemm etc.
Spatial means (``x.mean((2, 3))``: SE blocks, the classifier's pooling) are then written as
``GlobalAveragePool``, the same function, which onnxruntime runs in its blocked NCHWc layout where a
``ReduceMean`` forces a layout reorder (``global_average_pools``).
Static shapes by default (batch 1); ``--dynamic-batch`` makes only the batch dimension symbolic.
"""
from __future__ import annotations

import sys
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from export.artifact import Artifact
from export.capabilities import options_for, require
from export.common import export_model
from export.errors import ExportError
from export.options import OnnxOptions
from models import ModelSpec

if TYPE_CHECKING:  # an optional backend: imported when a session is made
    import onnxruntime


def session(path: str | Path, threads: int = 0) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session (``threads=0``: onnxruntime's default)."""
    ort = require("onnxruntime", "onnx")
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])


def global_average_pools(graph_model) -> int:
    """Rewrite, in place, each ``ReduceMean`` over the two spatial axes of a 4-D tensor as ``GlobalAveragePool``
    (followed by ``Flatten(axis=1)`` where the mean drops those axes); returns how many were rewritten.

    The same function (the mean over H x W of each channel); onnxruntime keeps ``GlobalAveragePool`` in its
    blocked NCHWc layout, where a ``ReduceMean`` makes it reorder the tensor back and forth. The axes are read
    from the attribute (opset < 18) or the constant second input (opset 18+, an initializer or a ``Constant``); ranks from shape inference.
    """
    from onnx import helper, numpy_helper

    graph = graph_model.graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    constants.update({node.output[0]: numpy_helper.to_array(node.attribute[0].t) for node in graph.node
                      if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value"})
    ranks = {info.name: len(info.type.tensor_type.shape.dim) for info in (*graph.value_info, *graph.input)
             if info.type.tensor_type.HasField("shape")}
    nodes, rewritten = [], 0
    for node in graph.node:
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        axes = attributes.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1] in constants:
            axes = constants[node.input[1]].tolist()
        if (node.op_type != "ReduceMean" or ranks.get(node.input[0]) != 4 or axes is None
                or sorted(int(axis) % 4 for axis in axes) != [2, 3]):
            nodes.append(node)
            continue
        rewritten += 1
        if attributes.get("keepdims", 1):
            nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), name=node.name))
        else:
            pooled = f"{node.output[0]}_pooled"
            nodes += [helper.make_node("GlobalAveragePool", [node.input[0]], [pooled], name=node.name),
                      helper.make_node("Flatten", [pooled], list(node.output), axis=1, name=f"{node.name}_flatten")]
    del graph.node[:]
    graph.node.extend(nodes)
    return rewritten


class OnnxFormat:
    """ONNX for the shared wrapper (a ``FormatHandler``)."""

    name = "onnx"

    def convert(self, model: nn.Module, spec: ModelSpec, tmp_path: Path, options: OnnxOptions) -> None:
        """Trace ``model`` at the spec's input shape, check the graph, slim it, save at ``tmp_path``."""
        onnx = require("onnx", "onnx")
        onnxslim = require("onnxslim", "onnx")
        sample = spec.sample_inputs(count=1, seed=0)[0]
        dynamic_axes = None
        if options.dynamic_batch:
            dynamic_axes = {spec.input_name: {0: "batch"}, spec.output_name: {0: "batch"}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the "legacy exporter" deprecation notice: chosen on purpose, see above
            torch.onnx.export(model, (sample,), str(tmp_path), input_names=[spec.input_name],
                              output_names=[spec.output_name], opset_version=options.opset,
                              dynamic_axes=dynamic_axes, do_constant_folding=True, dynamo=False)
        graph = onnx.load(str(tmp_path))
        onnx.checker.check_model(graph, full_check=True)
        slimmed = onnxslim.slim(graph)
        if slimmed is None:
            raise ExportError("onnxslim returned no graph", format="onnx",
                              hint="report it; the unslimmed graph was valid")
        global_average_pools(slimmed)
        onnx.checker.check_model(slimmed, full_check=True)
        onnx.save(slimmed, str(tmp_path))

    def run(self, path: Path, inputs: list[np.ndarray], spec: ModelSpec, options: OnnxOptions) -> list[np.ndarray]:
        """Outputs on normalized NCHW inputs; with a dynamic batch, all inputs go through as one batch."""
        sess = session(path)
        if options.dynamic_batch and len(inputs) > 1:
            batch = np.concatenate(inputs, axis=0).astype(np.float32)
            (logits,) = sess.run([spec.output_name], {spec.input_name: batch})
            return list(np.split(logits, np.cumsum([x.shape[0] for x in inputs])[:-1], axis=0))
        return [sess.run([spec.output_name], {spec.input_name: x.astype(np.float32)})[0] for x in inputs]

    def tool_versions(self) -> dict[str, str]:
        versions = {"torch": torch.__version__, "exporter": "torch.onnx (TorchScript, dynamo=False)"}
        for name in ("onnx", "onnxslim", "onnxruntime"):
            try:
                versions[name] = version(name)
            except PackageNotFoundError:
                versions[name] = "not installed"
        return versions

    def io_details(self, path: Path) -> dict:
        return {}  # float32 in, float32 out: the manifest's input fields say it all

    def input_layout(self, options: OnnxOptions) -> str:
        return "NCHW"

    def temp_paths(self, tmp_path: Path) -> list[Path]:
        return []

    def prepare_command_line(self) -> None:
        pass  # the exporter's one notice is silenced where it is raised (convert)


HANDLER = OnnxFormat()


def export(model: nn.Module, spec: ModelSpec, out_dir: str | Path = "artifacts", **options) -> Artifact:
    """Export ``model`` (training or deploy form) to ``out_dir/<model>/<model>.onnx``.

    ``options``: fields of ``OnnxOptions`` (precision, input_size, dynamic_batch, opset, ...).
    """
    return export_model(HANDLER, model, spec, Path(out_dir), options_for("onnx", **options))


if __name__ == "__main__":  # `python -m export.onnx`
    from export.cli import run_format_cli

    sys.exit(run_format_cli(HANDLER))
