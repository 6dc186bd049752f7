"""The one ``--input-size`` parser and the one rule every command line applies.

A size is ``N`` (square) or ``HxW`` in pixels (``256``, ``256x320``; ``X`` and spaces around the
``x`` are accepted). Each side must lie in [:data:`MIN_SIDE`, :data:`MAX_SIDE`]:

- below 32 the deepest stage of every zoo model (stride 32) would have no pixel left;
- above 4096 one activation map of these backbones no longer fits a phone's memory (or this
  host's: a 100000x100000 input asks for terabytes), so the size is a typo, not a request.

Whether a model takes a size inside that range (a window or patch size that must divide it) is
the model's to say: the export's trial forward pass names sizes that work.
"""
from __future__ import annotations

import argparse
import re

from mobilelat.errors import InputSizeError

MIN_SIDE = 32  # pixels: the coarsest stride of every zoo model
MAX_SIDE = 4096  # pixels: larger is a typo, not a mobile input
_SIZE = re.compile(r"^\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?$")


def parse_input_size(text: str) -> tuple[int, int]:
    """``"256"`` -> (256, 256), ``"256x320"`` -> (256, 320); anything else is an ``InputSizeError``."""
    match = _SIZE.match(str(text))
    if match is None:
        raise InputSizeError(f"--input-size takes N or HxW in pixels (e.g. 224 or 256x320), got {text!r}")
    height = int(match.group(1))
    width = int(match.group(2)) if match.group(2) is not None else height
    check_input_size(height, width)
    return height, width


def check_input_size(height: int, width: int) -> None:
    """Raise ``InputSizeError`` unless both sides lie in [MIN_SIDE, MAX_SIDE]."""
    for side in (height, width):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise InputSizeError(f"--input-size {height}x{width}: each side must be {MIN_SIDE} to {MAX_SIDE} "
                                 f"pixels (below {MIN_SIDE} the stride-32 stages have no pixel left; above "
                                 f"{MAX_SIDE} is not a mobile input)")


def input_size_type(text: str) -> tuple[int, int]:
    """``parse_input_size`` as an argparse ``type``: the error becomes argparse's one line."""
    try:
        return parse_input_size(text)
    except InputSizeError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--input-size ")) from None  # argparse names it


def format_input_size(size: tuple[int, int]) -> str:
    """(256, 320) -> ``"256x320"``."""
    return f"{size[0]}x{size[1]}"
