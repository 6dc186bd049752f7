"""The I/O contract and reference figures a model declares (its ``ModelSpec``).

Export and profiling read a model only through this contract: input shape, layout, dtype,
normalization, seeded sample inputs, and the figures its paper reports.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")  # resize filters an evaluation transform may name


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model is, what it takes, and what its paper reports."""

    name: str  # registry name, e.g. "repvit_m1"
    family: str  # family file under models/, e.g. "repvit"
    variant: str  # variant label as the paper writes it, e.g. "M1.0"
    paper: str  # paper title and venue
    reference_impl: str  # URL of the official implementation the model follows
    input_size: tuple[int, int, int] = (3, 224, 224)  # (channels, height, width) of one image
    layout: str = "NCHW"  # memory layout of the input tensor
    dtype: str = "float32"  # input element type
    mean: tuple[float, float, float] = IMAGENET_MEAN  # per-channel mean of 0..1 pixels
    std: tuple[float, float, float] = IMAGENET_STD  # per-channel std of 0..1 pixels
    # evaluation transform of the reference (timm's pretrained cfg where timm has the weights): resize the
    # shorter side to floor(size / crop_pct) with `interpolation` (a Pillow filter name), center crop to size
    crop_pct: float = 0.875  # fraction of the resized image the center crop keeps
    interpolation: str = "bicubic"  # "bicubic" or "bilinear": the resize filter
    num_classes: int = 1000  # classifier outputs
    input_name: str = "image"  # name of the single input in exported graphs
    output_name: str = "logits"  # name of the single output in exported graphs
    params_m: float | None = None  # reference parameter count, millions, training form
    deploy_params_m: float | None = None  # reference parameter count after reparameterization
    gmacs: float | None = None  # reference multiply-accumulates at input_size, billions
    top1: float | None = None  # published ImageNet-1k top-1 accuracy, percent
    published_latency_ms: float | None = None  # latency the paper reports, milliseconds
    published_latency_device: str | None = None  # device and runtime of that latency
    notes: str = ""  # anything a user should know (which table, which training recipe)
    extra: dict = field(default_factory=dict)  # family-specific facts, JSON-serialisable

    def __post_init__(self) -> None:
        if not 0.0 < self.crop_pct <= 1.0:
            raise ValueError(f"{self.name}: crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"{self.name}: interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """The NCHW shape of a batch of inputs."""
        return (batch, *self.input_size)

    def sample_inputs(self, count: int = 3, seed: int = 0, batch: int = 1) -> list[torch.Tensor]:
        """Seeded, normalized inputs: uniform pixels in [0, 1] pushed through mean/std."""
        generator = torch.Generator().manual_seed(seed)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        inputs = []
        for _ in range(count):
            pixels = torch.rand(self.input_shape(batch), generator=generator)
            inputs.append((pixels - mean) / std)
        return inputs

    def with_input_size(self, height: int, width: int | None = None) -> "ModelSpec":
        """A copy of this spec for another spatial size (MACs no longer the paper's)."""
        width = height if width is None else width
        return dataclasses.replace(self, input_size=(self.input_size[0], height, width), gmacs=None)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_FILLED_BY_REGISTRY = frozenset({"name", "family"})
_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelSpec)) - _FILLED_BY_REGISTRY


@dataclass(frozen=True)
class Variant:
    """One registered model of a family: its constructor arguments and its ``ModelSpec`` fields.

    A family file's ``VARIANTS`` table maps each registered name to one ``Variant``; that key is
    the only place the name is written. The registry fills the name and the family (the file's
    name) into the spec (``to_spec``).
    """

    kwargs: dict[str, Any]  # what the family's build() turns into its model class's arguments (mostly as is)
    spec_fields: dict[str, Any]  # every ModelSpec field except name and family (variant label, paper, figures)

    def __post_init__(self) -> None:
        misplaced = sorted(set(self.spec_fields) & _FILLED_BY_REGISTRY)
        if misplaced:
            raise TypeError(f"Variant spec_fields must not set {', '.join(misplaced)}: the registry fills them "
                            "from the VARIANTS key and the family file's name")
        unknown = sorted(set(self.spec_fields) - _SPEC_FIELDS)
        if unknown:
            raise TypeError(f"unknown ModelSpec field(s) in Variant spec_fields: {', '.join(unknown)} "
                            f"(fields: {', '.join(sorted(_SPEC_FIELDS))})")

    def to_spec(self, name: str, family: str) -> ModelSpec:
        """The ``ModelSpec`` of this variant registered as ``name`` by the family file ``family``."""
        return ModelSpec(name=name, family=family, **self.spec_fields)
