"""The op table of the Core ML reference evaluator: one numpy/torch function per MIL op type.

Each family module (``elementwise``, ``linalg``, ``conv_pool``, ``normalization``, ``tensor``,
``resample``) holds its functions and an ``OPS`` dict; ``MIL_OPS`` is their union. Tensors arrive
as numpy arrays; floating point ones always as float32, already rounded to float16 where the
program holds them in fp16. The evaluator (``export/coreml/evaluator.py``) rounds every result to
its output variable's dtype, which is what emulates fp16: inputs and results of every op are
float16 values, arithmetic in between is float32. Optional inputs may be absent; each function
applies the default the op documents.

Adding an op: write one function in its family's module and add one entry to that module's ``OPS``.
"""
from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from export.coreml.ops import conv_pool, elementwise, linalg, normalization, resample, tensor
from export.coreml.ops.common import Args, OpFunction

FAMILIES = (elementwise, linalg, conv_pool, normalization, tensor, resample)


def union_of(families: Iterable[ModuleType]) -> dict[str, OpFunction]:
    """One table from the families' ``OPS``; an op type in two of them is an error."""
    table: dict[str, OpFunction] = {}
    for family in families:
        doubled = table.keys() & family.OPS.keys()
        if doubled:  # one op type, one function: a second entry would silently win
            raise RuntimeError(f"MIL op(s) {sorted(doubled)} defined twice (again in {family.__name__})")
        table.update(family.OPS)
    return table


MIL_OPS: dict[str, OpFunction] = union_of(FAMILIES)

__all__ = ["Args", "FAMILIES", "MIL_OPS", "OpFunction", "union_of"]
