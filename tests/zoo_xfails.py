"""Known export failures of the model zoo, applied as strict xfails by tests/test_zoo_parity.py.

Add an entry when a (model, format) pair cannot pass the fp32 parity gate yet:
``("model_name", "format"): "reason, with the converter's message"``. Strict: when the pair
starts passing, the test fails until the entry is removed.
"""
from __future__ import annotations

ZOO_XFAILS: dict[tuple[str, str], str] = {
}
