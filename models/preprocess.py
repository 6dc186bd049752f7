"""Each model's evaluation transform: decode with Pillow, resize, center crop, 0..1, mean/std.

The transform is the reference's (timm's ``transforms_factory`` eval path, which the published
top-1 figures were measured with), driven by the model's ``ModelSpec``: ``crop_pct``,
``interpolation``, ``mean``, ``std`` and ``input_size``:

1. decode, and convert any mode (grayscale, palette, RGBA, CMYK, 16-bit) to RGB;
2. square target ``size``: resize the shorter side to ``floor(size / crop_pct)``, the longer one
   to ``int(that * long / short)`` (torchvision's ``Resize(int)``), with Pillow's filter of that name;
   a non-square target ``(h, w)`` scales both sides by one factor so the image covers
   ``floor(h / crop_pct) x floor(w / crop_pct)`` (timm's ``ResizeKeepRatio``: sides rounded);
3. center crop to the target, offsets ``int(round((side - target) / 2))`` (torchvision's ``CenterCrop``);
4. bytes to float32 in 0..1, then ``(x - mean) / std`` per channel; NCHW.

The phone app applies the same steps: the manifest of every export records ``crop_pct`` and
``interpolation`` beside ``mean`` and ``std``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from models.spec import ModelSpec

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
            "nearest": Image.Resampling.NEAREST}


def resize_size(size: tuple[int, int], crop_pct: float) -> tuple[int, int]:
    """The (height, width) the image is resized to cover before the crop: ``floor(side / crop_pct)``."""
    return math.floor(size[0] / crop_pct), math.floor(size[1] / crop_pct)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB (transparent pixels over black, as a plain ``convert`` gives)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits first
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """An image file decoded to RGB (raises ``OSError``/``ValueError`` from Pillow on a bad file)."""
    with Image.open(path) as image:
        image.load()
        return to_rgb(image)


def resize_and_crop(image: Image.Image, size: tuple[int, int], crop_pct: float, interpolation: str) -> Image.Image:
    """Steps 2 and 3: the RGB image resized as the reference does, then center-cropped to ``size`` (h, w)."""
    width, height = image.size
    target_h, target_w = size
    scale_h, scale_w = resize_size(size, crop_pct)
    if scale_h == scale_w:  # torchvision Resize(int): the shorter side to scale, the longer truncated
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = scale_h, int(scale_h * long / short)
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    else:  # timm ResizeKeepRatio (longest=0): one factor so that both sides cover the scale size
        ratio = min(height / scale_h, width / scale_w)
        new_h, new_w = round(height / ratio), round(width / ratio)
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), _FILTERS[interpolation])
    top = int(round((new_h - target_h) / 2.0))
    left = int(round((new_w - target_w) / 2.0))
    return image.crop((left, top, left + target_w, top + target_h))


def normalize(image: Image.Image, mean, std) -> np.ndarray:
    """Step 4: an RGB image as float32 CHW, 0..1 then ``(x - mean) / std``."""
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
    std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


def preprocess(image: Image.Image, spec: ModelSpec) -> np.ndarray:
    """One decoded image as the model's input: float32, (3, H, W), ``spec``'s evaluation transform."""
    size = (spec.input_size[1], spec.input_size[2])
    cropped = resize_and_crop(to_rgb(image), size, spec.crop_pct, spec.interpolation)
    return normalize(cropped, spec.mean, spec.std)


def preprocess_file(path: str | Path, spec: ModelSpec) -> np.ndarray:
    """``preprocess(load_image(path), spec)``."""
    return preprocess(load_image(path), spec)
