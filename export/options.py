"""Typed options of each export format: fields, defaults, checks, and what their flags say.

``ExportOptions`` holds what every format takes (it steers the shared wrapper: precision, input
size, reparameterization, the parity gate, the console). Each format's class adds only its own
fields, so a field a format does not take cannot be set on it. Every field is declared with
``option(default, help, ...)``: the help line is the field's one-line description, and the
command lines (``export/cli.py``) build their flags from it, with the default shown.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.errors import InputPathError, UnsupportedOptionError
from export.parity import Tolerance
from mobilelat.sizes import input_size_type

MIN_ONNX_OPSET = 17  # LayerNormalization is a single op from 17 on; older runtimes are not targets here
COREML_TARGETS = ("iOS16", "iOS17", "iOS18")  # ML programs with fp16 compute need iOS 15+; we take 16+
EXECUTORCH_BACKENDS = ("xnnpack", "coreml", "portable")  # the delegate a .pte is lowered to (portable: none)


def option(default: Any, help: str, *, flag: str | None = None, cli: bool = True, default_text: str | None = None,
           **argparse_kwargs: Any) -> Any:
    """A dataclass field with its one-line description and how its command-line flag reads.

    ``flag``: the flag when it is not ``--field-name``; ``cli=False``: library-only, no flag;
    ``default_text``: how the default reads in ``--help`` when the value itself says little;
    the rest goes to ``argparse.add_argument`` (``type``, ``action``, ``metavar``).
    """
    return dataclasses.field(default=default, metadata={
        "help": help, "flag": flag, "cli": cli, "default_text": default_text, "argparse": argparse_kwargs})


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of an options field: ``opset`` -> ``--opset``."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def help_of(field: dataclasses.Field) -> str:
    """The field's description with its default, as ``--help`` shows it."""
    shown = field.metadata.get("default_text")
    if shown is None:
        action = field.metadata["argparse"].get("action")
        shown = "off" if action in ("store_true", "store_false") else str(field.default)
    return f"{field.metadata['help']} (default: {shown})"


@dataclass(frozen=True)
class ExportOptions:
    """What every format takes: it steers the shared wrapper, not the converter."""

    precision: str = option("fp32", "numeric precision")
    input_size: tuple[int, int] | None = option(
        None, "spatial input size in pixels, N or HxW (e.g. 256 or 256x320; 32 to 4096)", type=input_size_type,
        metavar="HxW", default_text="the model spec's")
    reparameterize: bool = option(True, "export the training form instead of the reparameterized deploy form",
                                  flag="--no-reparam", action="store_false")
    parity_inputs: int = option(3, "seeded inputs the parity gate runs (at least 3)", cli=False)
    parity_seed: int = option(0, "seed of those inputs", cli=False)
    tolerance: Tolerance | None = option(None, "override of the tolerance table", cli=False,
                                         default_text="export/parity.py's entry")
    probe: bool = option(True, "also gate the same conversion on probe weights (models/probe.py), under which every "
                               "layer reach the output whatever the model's own weights are", cli=False)
    probe_seed: int | None = option(None, "seed of the probe weights", cli=False,
                                    default_text="derived from the model name (models.probe.name_seed)")
    quiet: bool = option(False, "no progress or summary; only the artifact's path", action="store_true")
    weights: str | None = option(None, "the checkpoint the model was loaded from, for the manifest", cli=False,
                                 default_text="random initialization")

    def check(self) -> None:
        """Raise ``UnsupportedOptionError`` for a value no export can take (the format's precisions are
        checked against the capability table by ``export.capabilities.check_options``)."""
        if self.parity_inputs < 3:
            raise UnsupportedOptionError(f"the parity gate runs at least 3 seeded inputs, "
                                         f"got parity_inputs={self.parity_inputs}")

    def to_dict(self) -> dict:
        """The options as the manifest records them."""
        data = dataclasses.asdict(self)
        data["input_size"] = list(self.input_size) if self.input_size else None
        return data


@dataclass(frozen=True)
class OnnxOptions(ExportOptions):
    """ONNX: a static graph at batch 1 unless ``dynamic_batch``."""

    dynamic_batch: bool = option(False, "symbolic batch dimension instead of a static batch of 1",
                                 action="store_true")
    opset: int = option(18, f"opset version ({MIN_ONNX_OPSET} or newer)", type=int, metavar="N")

    def check(self) -> None:
        super().check()
        if self.opset < MIN_ONNX_OPSET:  # checked before any model work, not after tracing
            raise UnsupportedOptionError(f"onnx export takes --opset {MIN_ONNX_OPSET} or newer, got opset "
                                         f"{self.opset} (LayerNormalization is a single op from 17 on)")


@dataclass(frozen=True)
class CoreMLOptions(ExportOptions):
    """Core ML: an ML program computing in fp16 unless told fp32."""

    precision: str = option("fp16", "numeric precision")
    image_input: bool = option(False, "RGB image input (pixels 0..255) with mean/std folded into the model",
                               action="store_true")
    coreml_target: str = option("iOS16", f"minimum deployment target, one of {', '.join(COREML_TARGETS)}",
                                metavar="TARGET")

    def check(self) -> None:
        super().check()
        if self.coreml_target not in COREML_TARGETS:
            raise UnsupportedOptionError(f"unknown Core ML deployment target --coreml-target {self.coreml_target}; "
                                         f"use one of {', '.join(COREML_TARGETS)}")


@dataclass(frozen=True)
class CalibratedOptions(ExportOptions):
    """The calibration options of a format whose int8_full calibrates on images (TFLite, ExecuTorch)."""

    calibration_dir: str | None = option(None, "int8_full: folder of images to calibrate on", metavar="DIR",
                                         default_text="seeded synthetic images")
    calibration_count: int = option(32, "int8_full: number of calibration images", type=int, metavar="N")

    def check(self) -> None:
        super().check()
        if self.calibration_dir is not None and self.precision != "int8_full":
            raise UnsupportedOptionError("--calibration-dir is used only with --precision int8_full")
        if self.calibration_dir is not None and not Path(self.calibration_dir).is_dir():  # before any model work
            raise InputPathError(f"--calibration-dir {self.calibration_dir} is not a directory")
        if self.precision == "int8_full" and self.calibration_count <= 0:
            raise UnsupportedOptionError(f"--calibration-count must be positive, got {self.calibration_count}")


@dataclass(frozen=True)
class TFLiteOptions(CalibratedOptions):
    """TFLite: channel-first input unless ``nhwc``; int8_full calibrates on images."""

    nhwc: bool = option(False, "channel-last input (N, H, W, C) as Android apps feed it", action="store_true")


@dataclass(frozen=True)
class ExecuTorchOptions(CalibratedOptions):
    """ExecuTorch: lowered to XNNPACK unless told another backend; int8_full calibrates as TFLite's does."""

    backend: str = option("xnnpack", f"delegate the program is lowered to, one of {', '.join(EXECUTORCH_BACKENDS)} "
                                     "(portable: no delegate)", metavar="BACKEND")

    def check(self) -> None:
        if self.backend not in EXECUTORCH_BACKENDS:
            raise UnsupportedOptionError(f"unknown ExecuTorch backend --backend {self.backend}; "
                                         f"use one of {', '.join(EXECUTORCH_BACKENDS)}")
        if self.precision.startswith("int8") and self.backend != "xnnpack":
            raise UnsupportedOptionError(f"--precision {self.precision} is the XNNPACK quantizer's; "
                                         f"it takes --backend xnnpack, not {self.backend}")
        if self.precision == "fp16" and self.backend == "portable":
            raise UnsupportedOptionError("--precision fp16 needs a delegate (--backend xnnpack or coreml); "
                                         "the portable kernels run fp32 here")
        super().check()


def own_fields(options_class: type[ExportOptions]) -> list[dataclasses.Field]:
    """The fields a format's options class adds to ``ExportOptions`` (a redefined default is not one)."""
    common = {f.name for f in dataclasses.fields(ExportOptions)}
    return [f for f in dataclasses.fields(options_class) if f.name not in common]
