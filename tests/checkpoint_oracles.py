"""The checkpoint oracles in tests/fixtures/checkpoints: rebuild a source state dict and its fixed input.

Each JSON file lists a source model's state-dict keys, shapes and dtypes (timm or an official
repository) and the logits that model gave, in float64, on a fixed input, with every floating
tensor filled from its key by the rule in the fixtures' README. No weights are stored.
"""
from __future__ import annotations

import json
import math
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints"
ORACLE_FILES = sorted(FIXTURES.glob("*/*.json"))
ORACLE_IDS = [f"{path.parent.name}/{path.stem}" for path in ORACLE_FILES]
# one oracle per family for quick runs (the smallest, or the one exercising the most of the key map)
FAST_ORACLES = {"timm/repvit_m1", "official/edgevit_xxs", "official/efficientmod_xxs", "timm/edgenext_xx_small",
                "timm/mobilevit_xxs", "timm/mobilenetv3_small_100", "timm/convnext_atto",
                "timm/tf_efficientnetv2_b0", "timm/swin_tiny_patch4_window7_224", "timm/vit_tiny_patch16_224"}
RELATIVE_TOLERANCE = 1e-9  # max |ours - source| / max |source logits|, float64 throughout


def fill(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """The README's fill rule: a tensor's values from a generator seeded by its key."""
    rs = np.random.RandomState(zlib.crc32(key.encode()))
    if key.endswith("running_var"):
        return rs.uniform(0.5, 1.5, shape)
    if key.endswith("running_mean"):
        return 0.1 * rs.standard_normal(shape)
    if len(shape) <= 1:
        return (1.0 if key.endswith("weight") else 0.0) + 0.1 * rs.standard_normal(shape)
    return rs.standard_normal(shape) / math.sqrt(int(np.prod(shape[1:])))


def image(shape: tuple[int, ...]) -> torch.Tensor:
    """The fixed float64 input."""
    count = int(np.prod(shape))
    return torch.from_numpy((np.sin(np.arange(count, dtype=np.float64) * 0.37) * 1.5).reshape(shape))


@lru_cache(maxsize=None)
def oracle(oracle_id: str) -> dict:
    return json.loads((FIXTURES / f"{oracle_id}.json").read_text())


def source_state_dict(oracle_id: str) -> dict[str, torch.Tensor]:
    """The source model's state dict, keys in its order, floating tensors in float64."""
    state = {}
    for key, shape, dtype in oracle(oracle_id)["keys"]:
        if dtype.startswith("float"):
            values = np.ascontiguousarray(fill(key, tuple(shape)), dtype=np.float64)
            state[key] = torch.from_numpy(values.reshape(shape))
        else:
            state[key] = torch.zeros(shape, dtype=getattr(torch, dtype))
    return state


def write_checkpoint(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Write a state dict as a user's file would be: torch.save for .pth/.bin, safetensors for .safetensors."""
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def relative_error(logits: torch.Tensor, oracle_id: str) -> float:
    """max |logits - source logits| / max |source logits|."""
    reference = torch.tensor(oracle(oracle_id)["logits"], dtype=torch.float64)
    return float((logits.flatten() - reference).abs().max() / reference.abs().max())
