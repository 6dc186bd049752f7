"""Core ML reference evaluator: run a saved ``.mlpackage`` on Linux, op by op, with numpy.

Core ML itself runs only on macOS. To hold a Core ML export to the parity gate anywhere, this
module reads the saved package back into a MIL program (coremltools' milproto loader, with the
package's ``weights/weight.bin``) and interprets the program's ``main`` function: every op is
looked up in the table of ``export/coreml/ops/`` and computed with numpy (torch's functional
kernels for convolution and pooling).

fp16 is emulated: every value is held in its variable's MIL dtype, so wherever the program holds
a tensor in fp16 (a ``cast`` to fp16, an fp16 constant, an op whose output is fp16) the value is
rounded to float16. Each op therefore sees float16 inputs and produces a float16 result; the
arithmetic in between is float32 (Core ML's GPU and Neural Engine accumulate in fp16 or fp32
depending on the unit, so real devices may differ from this by a few fp16 ulps).

An op type missing from the table is an ``UnsupportedMILOpError`` naming it, raised when the
package is loaded, before anything is evaluated: never a silent skip.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from export.capabilities import require
from export.coreml.ops import MIL_OPS

# what the gate's Core ML runtime is and what it emulates, written into every Core ML manifest
# (``options.parity_runtime``): the gate's figures are this evaluator's, not a device's
EMULATION = {
    "runtime": "mobilelat numpy MIL evaluator (export/coreml/evaluator.py), not Core ML",
    "fp16_storage": "every value held in its MIL dtype: fp16 tensors rounded to float16 between ops",
    "accumulation": "float32 inside every op (reductions, matmul, conv, layer norm); Core ML's GPU and "
                    "Neural Engine may accumulate in fp16, so a device can differ by a few fp16 ulps",
}

if TYPE_CHECKING:  # the optional backend: imported when a package is loaded
    from coremltools.converters.mil.mil import Program, Var
    from coremltools.proto.Model_pb2 import Model


class MILEvalError(RuntimeError):
    """Evaluation of a MIL op failed or produced a value of the wrong shape."""


class UnsupportedMILOpError(MILEvalError):
    """The program uses an op type that the reference evaluator's table does not hold."""

    def __init__(self, op_type: str, op_name: str, count: int = 1):
        self.op_type = op_type
        self.op_name = op_name
        more = f" (and {count - 1} more op(s) of that type)" if count > 1 else ""
        super().__init__(
            f"the Core ML reference evaluator has no implementation of MIL op {op_type!r} "
            f"(first used by op {op_name!r}{more}); add a function for it to MIL_OPS (its family's OPS in "
            f"export/coreml/ops/), following its definition in coremltools/converters/mil/mil/ops/defs/")


@dataclass
class _Step:
    """One non-const op of the program, resolved once at load time."""

    op_type: str  # MIL op type, the key into MIL_OPS
    name: str  # the op's name in the program (for error messages)
    inputs: dict[str, str | tuple[str, ...]]  # input name -> variable name(s) it reads
    outputs: list[tuple[str, Any, tuple | None]]  # (variable name, numpy dtype, static shape or None)


@dataclass
class OpTiming:
    """Where the time of one evaluation went, per op type."""

    seconds_by_op: dict[str, float] = field(default_factory=dict)  # op type -> total seconds
    total_seconds: float = 0.0  # whole evaluation


def _np_dtype(var: Var) -> Any:
    types = require("coremltools.converters.mil.mil.types", "coreml")
    return types.nptype_from_builtin(var.dtype)


def _static_shape(var: Var) -> tuple | None:
    shape = getattr(var, "shape", None)
    if shape is None or not all(isinstance(n, (int, np.integer)) for n in shape):
        return None
    return tuple(int(n) for n in shape)


def _hold(value: Any, dtype: Any) -> Any:
    """Round a value to its variable's dtype and keep it in compute form (float16 held as float32)."""
    if isinstance(value, (str, bytes)):
        return value
    array = np.asarray(value)
    if dtype == np.float16:
        return array.astype(np.float16).astype(np.float32)
    if dtype in (np.float32, np.float64):
        return array.astype(np.float32)
    return array.astype(dtype)


def load_mil_program(package_path: str | Path) -> tuple[Program, Model]:
    """(MIL program, model spec) of a saved ``.mlpackage``; no macOS needed."""
    ct = require("coremltools", "coreml")
    milproto = require("coremltools.converters.mil.frontend.milproto.load", "coreml")
    package_path = Path(package_path)
    if not (package_path / "Manifest.json").is_file():
        raise FileNotFoundError(f"{package_path} is not an .mlpackage (no Manifest.json inside)")
    spec = ct.utils.load_spec(str(package_path))
    if spec.WhichOneof("Type") != "mlProgram":
        raise ValueError(f"{package_path} holds a {spec.WhichOneof('Type')} model; the reference "
                         f"evaluator reads ML programs only (convert with convert_to='mlprogram')")
    weights_dir = package_path / "Data" / "com.apple.CoreML" / "weights"
    program = milproto.load(spec, spec.specificationVersion, str(weights_dir))
    return program, spec


class MILEvaluator:
    """Evaluates the ``main`` function of a saved ML program; load once, call many times."""

    def __init__(self, package_path: str | Path):
        self.package_path = Path(package_path)
        program, self.spec = load_mil_program(self.package_path)
        function = program.functions["main"]
        self.input_names = list(function.inputs)
        self._input_dtypes = {name: _np_dtype(var) for name, var in function.inputs.items()}
        self.output_names = [var.name for var in function.outputs]
        self._output_dtypes = {var.name: _np_dtype(var) for var in function.outputs}
        self._constants: dict[str, Any] = {}
        self._steps: list[_Step] = []
        unknown: dict[str, list[str]] = {}
        for op in function.operations:
            if op.op_type == "const":
                var = op.outputs[0]
                self._constants[var.name] = _hold(var.val, _np_dtype(var)) if not isinstance(
                    var.val, str) else var.val
                continue
            if op.op_type not in MIL_OPS:
                unknown.setdefault(op.op_type, []).append(op.name)
                continue
            inputs = {key: tuple(v.name for v in value) if isinstance(value, (list, tuple)) else value.name
                      for key, value in op.inputs.items()}
            outputs = [(var.name, _np_dtype(var), _static_shape(var)) for var in op.outputs]
            self._steps.append(_Step(op.op_type, op.name, inputs, outputs))
        if unknown:
            op_type, names = next(iter(unknown.items()))
            raise UnsupportedMILOpError(op_type, names[0], len(names))
        self.op_types = sorted({step.op_type for step in self._steps})

    @property
    def holds_fp16(self) -> bool:
        """Whether any op output is fp16 (the program computes in fp16)."""
        return any(dtype == np.float16 for step in self._steps for _, dtype, _ in step.outputs)

    def run(self, feeds: dict[str, np.ndarray], timing: OpTiming | None = None) -> dict[str, np.ndarray]:
        """Output name -> array (in the output's MIL dtype) for one set of inputs."""
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise ValueError(f"missing input(s) {sorted(missing)}; the program takes {self.input_names}")
        start = time.perf_counter()
        values: dict[str, Any] = dict(self._constants)
        for name in self.input_names:
            values[name] = _hold(feeds[name], self._input_dtypes[name])
        for step in self._steps:
            args = {key: tuple(values[n] for n in ref) if isinstance(ref, tuple) else values[ref]
                    for key, ref in step.inputs.items()}
            op_start = time.perf_counter()
            try:
                result = MIL_OPS[step.op_type](args)
            except Exception as error:
                raise MILEvalError(f"MIL op {step.op_type!r} ({step.name!r}) failed: "
                                   f"{type(error).__name__}: {error}") from error
            results = result if isinstance(result, tuple) else (result,)
            if len(results) != len(step.outputs):
                raise MILEvalError(f"MIL op {step.op_type!r} ({step.name!r}) gave {len(results)} "
                                   f"outputs, the program declares {len(step.outputs)}")
            for (name, dtype, shape), value in zip(step.outputs, results):
                held = _hold(value, dtype)
                if shape is not None and tuple(np.shape(held)) != shape:
                    raise MILEvalError(f"MIL op {step.op_type!r} ({step.name!r}) produced shape "
                                       f"{tuple(np.shape(held))}, the program declares {shape}")
                values[name] = held
            if timing is not None:
                spent = time.perf_counter() - op_start
                timing.seconds_by_op[step.op_type] = timing.seconds_by_op.get(step.op_type, 0.0) + spent
        if timing is not None:
            timing.total_seconds += time.perf_counter() - start
        return {name: np.asarray(values[name]).astype(self._output_dtypes[name])
                for name in self.output_names}


def evaluate_mlpackage(package_path: str | Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One-shot convenience: load the package and evaluate it on one set of inputs."""
    return MILEvaluator(package_path).run(feeds)
