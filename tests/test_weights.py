"""Checkpoint loading beyond the oracles: formats, hub folders, aliases, heads, input sizes, conversion, errors.

The logits of every source checkpoint are checked in test_weights_oracles.py; here the same
rebuilt source state dicts drive everything else a user meets: a Hugging Face hub cache folder,
timm's names for our models, a checkpoint fine-tuned to another class count or without the
distillation head, ViT/Swin checkpoints for another input size (tables interpolated as timm does,
checked against an independent numpy/PIL computation), ``python -m models convert-weights``, the
deploy form, and every kind of bad file through the three CLIs that take ``--weights`` (exit
status 2, one line, no traceback).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_oracles import RELATIVE_TOLERANCE, image, oracle, relative_error, source_state_dict, write_checkpoint

import models
import reparam
from models import registry
from models.registry import build_aliases, build_index
from models.spec import Variant
from models.weights import (CheckpointFormatError, CheckpointLayout, CheckpointMismatchError, DeployCheckpointError,
                            read_checkpoint, to_our_layout)

ROOT = Path(__file__).resolve().parents[1]


def _timm_file(tmp_path: Path, oracle_id: str, suffix: str = ".safetensors", transform=None) -> Path:
    state = source_state_dict(oracle_id)
    if transform is not None:
        state = transform(state)
    return write_checkpoint(state, tmp_path / f"{oracle_id.replace('/', '_')}{suffix}")


def _logits(model: torch.nn.Module, oracle_id: str, size: tuple[int, ...] | None = None) -> torch.Tensor:
    with torch.no_grad():
        return model(image(size or tuple(oracle(oracle_id)["input_shape"])))


# ------------------------------------------------------------------------------ hub cache folders
def _hub_cache(tmp_path: Path, checkpoint: Path, filename: str, architecture: str, snapshots: int = 1,
               with_ref: bool = True) -> Path:
    """A Hugging Face hub cache entry as huggingface_hub lays it out: blobs, snapshots of symlinks, refs/main."""
    repo = tmp_path / "hub" / f"models--timm--{architecture}.dist_in1k"
    (repo / "blobs").mkdir(parents=True)
    blob = repo / "blobs" / "0123abcd"
    blob.write_bytes(checkpoint.read_bytes())
    config = repo / "blobs" / "4567ef"
    config.write_text(f'{{"architecture": "{architecture}", "num_classes": 1000}}')
    for index in range(snapshots):
        snapshot = repo / "snapshots" / f"{index:040x}"
        snapshot.mkdir(parents=True)
        (snapshot / filename).symlink_to(os.path.relpath(blob, snapshot))
        (snapshot / "config.json").symlink_to(os.path.relpath(config, snapshot))
    if with_ref:
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(f"{0:040x}")
    return repo


@pytest.mark.fast
@pytest.mark.parametrize("filename,suffix", [("model.safetensors", ".safetensors"), ("pytorch_model.bin", ".bin")])
def test_hub_snapshot_folder_loads(tmp_path, caplog, filename, suffix):
    checkpoint = _timm_file(tmp_path, "timm/repvit_m1", suffix)
    repo = _hub_cache(tmp_path, checkpoint, filename, "repvit_m1")
    snapshot = next((repo / "snapshots").iterdir())
    direct = models.create_model("repvit_m1", weights=checkpoint, dtype=torch.float64)
    with caplog.at_level(logging.WARNING):
        from_snapshot = models.create_model("repvit_m1", weights=snapshot, dtype=torch.float64)
        from_repo = models.create_model("repvit_m1", weights=repo, dtype=torch.float64)
    assert caplog.text == "", "a snapshot of the model asked for loads without a note"
    for model in (from_snapshot, from_repo):
        state = model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in direct.state_dict().items())
    assert relative_error(_logits(from_repo, "timm/repvit_m1"), "timm/repvit_m1") <= RELATIVE_TOLERANCE


@pytest.mark.fast
def test_hub_snapshot_of_a_look_alike_is_noted(tmp_path, caplog):
    """timm's tf_efficientnetv2_s has efficientnetv2_s's keys but TensorFlow padding: the folder's config says so."""
    checkpoint = _timm_file(tmp_path, "timm/efficientnetv2_s")
    repo = _hub_cache(tmp_path, checkpoint, "model.safetensors", "tf_efficientnetv2_s")
    with caplog.at_level(logging.WARNING):
        models.create_model("efficientnetv2_s", weights=repo)
    assert "holds timm's 'tf_efficientnetv2_s', loaded into efficientnetv2_s" in caplog.text


@pytest.mark.fast
def test_hub_folder_errors_say_what_to_pass(tmp_path):
    checkpoint = _timm_file(tmp_path, "timm/convnext_atto")
    repo = _hub_cache(tmp_path, checkpoint, "model.safetensors", "convnext_atto", snapshots=2, with_ref=False)
    with pytest.raises(CheckpointFormatError, match="2 hub snapshots and no refs/main"):
        models.create_model("convnext_atto", weights=repo)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointFormatError, match="folder without model.safetensors or pytorch_model.bin"):
        models.create_model("convnext_atto", weights=tmp_path / "empty")


# ----------------------------------------------------------------------------------------- aliases
@pytest.mark.fast
def test_timm_names_are_aliases_with_a_note(caplog):
    with caplog.at_level(logging.WARNING):
        model = models.create_model("vit_tiny_patch16_224")
    assert type(model).__name__ == "VisionTransformer"
    assert "'vit_tiny_patch16_224' is vit_tiny_patch16 here" in caplog.text
    assert models.model_spec("swin_tiny_patch4_window7_224").name == "swin_tiny"
    assert models.model_spec("tf_efficientnetv2_b0").name == "efficientnetv2_b0"
    assert registry.resolve_name("timm/repvit_m1.dist_in1k", note=False) == "repvit_m1"
    assert registry.resolve_name("convnext_atto.d2_in1k", note=False) == "convnext_atto"
    with pytest.raises(models.UnknownModelError, match="vit_tiny_patch16_224"):
        models.create_model("vit_tiny_patch16_225")


@pytest.mark.fast
def test_aliases_are_the_source_names_the_families_layouts_give():
    """Source names are written once, in each family's CHECKPOINT_LAYOUTS; those that differ from ours are aliases."""
    assert registry._aliases() == {
        "efficientMod_xxs": "efficientmod_xxs", "efficientMod_xs": "efficientmod_xs",
        "efficientMod_s": "efficientmod_s", "efficientMod_s_Conv": "efficientmod_s_conv",
        "tf_efficientnetv2_b0": "efficientnetv2_b0", "swin_tiny_patch4_window7_224": "swin_tiny",
        "vit_tiny_patch16_224": "vit_tiny_patch16"}
    assert registry.aliases_of("swin_tiny") == ["swin_tiny_patch4_window7_224"]
    assert registry.aliases_of("repvit_m1") == []


def _variant() -> Variant:
    return Variant({}, dict(variant="v", paper="p", reference_impl="r"))


@pytest.mark.fast
def test_a_source_name_that_clashes_is_an_error():
    index = build_index([("alpha", {"net_a": _variant(), "net_b": _variant()}), ("beta", {"net_c": _variant()})])

    def aliases(family: str, names: dict[str, str]) -> dict[str, str]:
        return build_aliases(index, [(family, [CheckpointLayout("timm", "timm", ("x",), names=names)])])

    assert aliases("alpha", {"net_a": "net_a", "net_b": "tf_net_b"}) == {"tf_net_b": "net_b"}
    with pytest.raises(ValueError, match=r"models/alpha.py: checkpoint layout 'timm' names 'net_c'"):
        aliases("alpha", {"net_c": "tf_net_c"})  # net_c is beta's
    with pytest.raises(ValueError, match=r"timm name 'net_c' for net_a is another registered model's name"):
        aliases("alpha", {"net_a": "net_c"})
    with pytest.raises(ValueError, match=r"'tf_net' stands for both net_a and net_b"):
        aliases("alpha", {"net_a": "tf_net", "net_b": "tf_net"})


@pytest.mark.fast
def test_info_lists_the_source_names():
    result = subprocess.run([sys.executable, "-m", "models", "info", "tf_efficientnetv2_b0"], capture_output=True,
                            text=True, cwd=ROOT, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "timm: tf_efficientnetv2_b0" in result.stdout and "efficientnetv2_b0" in result.stdout
    assert "'tf_efficientnetv2_b0' is efficientnetv2_b0 here" in result.stderr


# ------------------------------------------------------------------------------------ heads, dtype
@pytest.mark.fast
def test_a_checkpoint_for_ten_classes_builds_a_ten_class_head(tmp_path):
    def ten_classes(state):
        return {k: (v[:10] if k.startswith("head.fc.") else v) for k, v in state.items()}

    path = _timm_file(tmp_path, "timm/convnext_atto", transform=ten_classes)
    model = models.create_model("convnext_atto", weights=path, dtype=torch.float64)
    assert model.head.out_features == 10
    reference = torch.tensor(oracle("timm/convnext_atto")["logits"], dtype=torch.float64)
    error = float((_logits(model, "timm/convnext_atto").flatten() - reference[:10]).abs().max())
    assert error <= RELATIVE_TOLERANCE * float(reference.abs().max())
    with pytest.raises(CheckpointMismatchError, match=r"built with other arguments than num_classes=1000"):
        models.create_model("convnext_atto", weights=path, num_classes=1000)


@pytest.mark.fast
def test_a_checkpoint_without_the_distillation_head(tmp_path):
    full_path = _timm_file(tmp_path, "timm/repvit_m1")
    path = _timm_file(tmp_path, "timm/repvit_m1", ".pth",
                      transform=lambda s: {k: v for k, v in s.items() if not k.startswith("head.head_dist.")})
    full = models.create_model("repvit_m1", weights=full_path, dtype=torch.float64)
    single = models.create_model("repvit_m1", weights=path, dtype=torch.float64)
    assert full.classifier.distillation and not single.classifier.distillation
    x = image(tuple(oracle("timm/repvit_m1")["input_shape"]))
    with torch.no_grad():
        pooled = full.forward_features(x).mean((2, 3))
        torch.testing.assert_close(single(x), full.classifier.classifier(pooled), rtol=0, atol=0)


@pytest.mark.fast
def test_half_precision_checkpoint_and_dtypes(tmp_path):
    path = _timm_file(tmp_path, "timm/repvit_m1", transform=lambda s: {k: v.half() if v.is_floating_point() else v
                                                                        for k, v in s.items()})
    model = models.create_model("repvit_m1", weights=path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert not any(t.is_meta for t in model.state_dict().values())
    half = read_checkpoint(path).state_dict
    converted, _ = to_our_layout(half, registry.family_module("repvit_m1"))
    assert all(torch.equal(v.float(), converted[k].float()) for k, v in model.state_dict().items()
               if v.is_floating_point())
    assert {p.dtype for p in models.create_model("repvit_m0_6", dtype="float64").parameters()} == {torch.float64}


@pytest.mark.fast
def test_loaded_model_trains(tmp_path):
    """Weights assigned to a model built without initialization are ordinary trainable parameters."""
    model = models.create_model("repvit_m1", weights=_timm_file(tmp_path, "timm/repvit_m1")).train()
    logits, logits_dist = model(torch.randn(2, 3, 64, 64))
    (logits.sum() + logits_dist.sum()).backward()
    assert all(isinstance(p, torch.nn.Parameter) and p.grad is not None for p in model.parameters())


# ------------------------------------------------------------------------- another input size
def _pil_resize(channels: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bicubic resize of (C, H, W) float32 maps, per channel, by Pillow (a=-0.5 cubic filter)."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(c), mode="F").resize((size, size),
                                                                                          Image.BICUBIC))
                     for c in channels])


@pytest.mark.fast
@pytest.mark.parametrize("checkpoint_size,model_size", [(224, 384), (384, 224)])
def test_vit_position_embeddings_are_resampled_as_timm_does(tmp_path, caplog, checkpoint_size, model_size):
    state = source_state_dict("timm/vit_tiny_patch16_224")
    old_grid, new_grid = checkpoint_size // 16, model_size // 16
    if checkpoint_size != 224:  # a 384 checkpoint: a 24x24 table, made up here
        rs = np.random.RandomState(3)
        state["pos_embed"] = torch.from_numpy(rs.standard_normal((1, 1 + old_grid ** 2, 192)))
    path = write_checkpoint(state, tmp_path / "vit.safetensors")
    with caplog.at_level(logging.WARNING):
        model = models.create_model("vit_tiny_patch16", img_size=model_size, weights=path, dtype=torch.float64)
    assert f"pos_embed resampled from {old_grid}x{old_grid} to {new_grid}x{new_grid} patches" in caplog.text
    source = state["pos_embed"][0]
    patches = source[1:].numpy().astype(np.float32).reshape(old_grid, old_grid, 192).transpose(2, 0, 1)
    expected = _pil_resize(patches, new_grid).transpose(1, 2, 0).reshape(new_grid ** 2, 192)
    got = model.pos_embed.detach()[0]
    assert torch.equal(got[0], source[0]), "the class token's entry is kept as it is"
    np.testing.assert_allclose(got[1:].numpy(), expected, rtol=0, atol=2e-5)
    assert torch.equal(model.blocks[0].attn.qkv.weight, state["blocks.0.attn.qkv.weight"])
    assert _logits(model, "timm/vit_tiny_patch16_224", (1, 3, model_size, model_size)).shape == (1, 1000)


def _progression_positions_numpy(source: int, target: int) -> np.ndarray:
    """BEiT/timm's source offsets, found independently: the ratio q solves 1 + q + ... + q^(n-1) = target // 2
    (a polynomial root; timm bisects for it to 1e-6), offsets are the partial sums of q^i, mirrored."""
    n = source // 2
    coefficients = [1.0] * n
    coefficients[-1] -= target // 2  # q^(n-1) + ... + q + (1 - target // 2) = 0
    roots = np.roots(coefficients)
    ratio = min(r.real for r in roots if abs(r.imag) < 1e-12 and 1.0 < r.real)
    distances = np.cumsum([1.0] + [ratio ** i for i in range(1, n)])
    return np.concatenate([-distances[::-1], [0.0], distances])


@pytest.mark.fast
def test_swin_relative_position_tables_are_resized_as_timm_does(tmp_path, caplog):
    state = source_state_dict("timm/swin_tiny_patch4_window7_224")
    path = write_checkpoint(state, tmp_path / "swin.pth")
    with caplog.at_level(logging.WARNING):
        model = models.create_model("swin_tiny", img_size=384, window=12, weights=path, dtype=torch.float64)
    assert "relative position tables resized from window 7 to 12" in caplog.text
    points = _progression_positions_numpy(13, 23)
    targets = np.arange(-11, 12, dtype=np.float64)
    model_state = model.state_dict()
    checked = 0
    for key, table in state.items():
        if not key.endswith("relative_position_bias_table"):
            continue
        ours = key.replace("layers.", "stages.")
        heads = table.shape[1]
        grid = table.numpy().T.reshape(heads, 13, 13)  # (heads, row offset, column offset)
        # separable linear interpolation: down each column, then along each new row
        columns = np.stack([[np.interp(targets, points, grid[h, :, c]) for c in range(13)] for h in range(heads)])
        rows = columns.transpose(0, 2, 1)  # (heads, new row, column)
        both = np.stack([[np.interp(targets, points, rows[h, r]) for r in range(23)] for h in range(heads)])
        expected = both.reshape(heads, 23 * 23).T  # row-major (row, column) offsets, as the index reads them
        np.testing.assert_allclose(model_state[ours].numpy(), expected, rtol=0, atol=2e-5)
        checked += 1
    assert checked == 12
    assert _logits(model, "timm/swin_tiny_patch4_window7_224", (1, 3, 384, 384)).shape == (1, 1000)


# ------------------------------------------------- official layouts without an oracle of their own
def _rename(state: dict[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    import re

    out = {}
    for key, value in state.items():
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


# timm's checkpoint_filter_fn renames facebookresearch/ConvNeXt and mmaaz60/EdgeNeXt files to timm's
# names; these rules run it backwards, so a timm oracle becomes the official file it was converted from
_FB_FROM_TIMM = [(r"^stem\.", "downsample_layers.0."),
                 (r"^stages\.(\d+)\.downsample\.(\d+)", r"downsample_layers.\1.\2"),
                 (r"^stages\.(\d+)\.blocks\.(\d+)", r"stages.\1.\2"), (r"conv_dw", "dwconv"), (r"mlp\.fc", "pwconv"),
                 (r"^head\.fc\.", "head."), (r"^head\.norm\.", "norm.")]


def _official_swin(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's Swin names back to microsoft/Swin-Transformer's: patch merging at the end of the previous
    stage, ``head.weight``, and the index and mask buffers the official code saves."""
    import re

    out = {}
    for key, value in _rename(state, [(r"^head\.fc\.", "head.")]).items():
        match = re.match(r"^layers\.(\d+)\.downsample\.(.*)$", key)
        out[f"layers.{int(match.group(1)) - 1}.downsample.{match.group(2)}" if match else key] = value
        if key.endswith("attn.relative_position_bias_table"):
            out[key.replace("bias_table", "index")] = torch.zeros(49, 49, dtype=torch.int64)
            block = int(re.search(r"blocks\.(\d+)", key).group(1))
            stage = int(key.split(".")[1])
            if block % 2 and stage < 3:
                mask_key = key.replace("attn.relative_position_bias_table", "attn_mask")
                out[mask_key] = torch.zeros(64 // 4 ** stage, 49, 49)
    return out


@pytest.mark.fast
@pytest.mark.parametrize("oracle_id,to_official", [
    ("timm/convnext_tiny", lambda s: _rename(s, _FB_FROM_TIMM)),
    ("timm/edgenext_x_small", lambda s: _rename(s, _FB_FROM_TIMM)),
    ("timm/swin_tiny_patch4_window7_224", _official_swin),
])
def test_official_layouts_give_the_same_logits(tmp_path, oracle_id, to_official):
    """The official files of families whose oracle is timm's: same numbers, the official repository's names."""
    official = to_official(source_state_dict(oracle_id))
    name = oracle(oracle_id)["ours"]
    assert to_our_layout(official, registry.family_module(registry.resolve_name(name, note=False)))[1] == "official"
    model = models.create_model(name, weights=write_checkpoint(official, tmp_path / "official.pth"),
                                dtype=torch.float64)
    assert relative_error(_logits(model, oracle_id), oracle_id) <= RELATIVE_TOLERANCE


# ---------------------------------------------------------------------------------- conversion
def _env() -> dict:
    return {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", "/tmp")}


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, env=_env(),
                          timeout=timeout)


@pytest.mark.fast
def test_convert_weights_writes_our_layout_once_and_loads_back_exactly(tmp_path):
    from safetensors import safe_open

    source = _timm_file(tmp_path, "timm/repvit_m1", ".pth")
    out = tmp_path / "out" / "repvit_m1.safetensors"
    result = _cli("models", "convert-weights", "repvit_m1", str(source), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "from the timm layout" in result.stdout
    assert [p.name for p in out.parent.iterdir()] == [out.name], "a temporary file was left behind"
    with safe_open(str(out), framework="pt") as handle:
        assert handle.metadata()["model"] == "repvit_m1" and handle.metadata()["source_layout"] == "timm"
        assert set(handle.keys()) == set(models.create_model("repvit_m1").state_dict())
    assert read_checkpoint(out).state_dict["features.0.0.c.weight"].dtype == torch.float64  # not rounded
    again = models.create_model("repvit_m1", weights=out, dtype=torch.float64)
    direct = models.create_model("repvit_m1", weights=source, dtype=torch.float64)
    assert all(torch.equal(v, direct.state_dict()[k]) for k, v in again.state_dict().items())
    assert relative_error(_logits(again, "timm/repvit_m1"), "timm/repvit_m1") <= RELATIVE_TOLERANCE
    assert to_our_layout(read_checkpoint(out).state_dict, registry.family_module("repvit_m1"))[1] == "ours"


# ----------------------------------------------------------------------------------- deploy form
@pytest.mark.fast
def test_deploy_form_from_a_timm_checkpoint_and_from_a_saved_deploy_checkpoint(tmp_path):
    path = _timm_file(tmp_path, "timm/repvit_m1")
    training = models.create_model("repvit_m1", weights=path, dtype=torch.float64)
    deploy = models.create_model("repvit_m1", weights=path, deploy=True, dtype=torch.float64)
    saved = tmp_path / "deploy.pt"
    torch.save(reparam.reparameterize(training).state_dict(), saved)  # what python -m reparam --out writes
    reloaded = models.create_model("repvit_m1", weights=saved, deploy=True)
    x = image(tuple(oracle("timm/repvit_m1")["input_shape"]))
    with torch.no_grad():
        reference = training(x)
        scale = float(reference.abs().max())
        assert float((deploy(x) - reference).abs().max()) <= 1e-9 * scale
        assert float((reloaded.double()(x) - reference).abs().max()) <= 1e-5 * scale
    with pytest.raises(DeployCheckpointError, match="deploy-form checkpoint of repvit_m1.*deploy=True"):
        models.create_model("repvit_m1", weights=saved)


@pytest.mark.fast
def test_an_unrecognised_layout_keeps_the_precise_report(tmp_path):
    state = models.create_model("convnext_atto").state_dict()
    state["stem.0.weight_renamed"] = state.pop("stem.0.weight")
    state["head.weight"] = state["head.weight"][:, :7]
    path = write_checkpoint(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        models.create_model("convnext_atto", weights=path)
    message = str(info.value)
    assert "missing (1): stem.0.weight" in message and "unexpected (1): stem.0.weight_renamed" in message
    assert "wrong shape (1): head.weight: checkpoint (1000, 7) vs model (1000, 320)" in message


# ------------------------------------------------------------------------------------ bad input
def _truncated(tmp_path: Path, suffix: str) -> Path:
    good = _timm_file(tmp_path, "timm/convnext_atto", suffix)
    data = good.read_bytes()
    bad = tmp_path / f"truncated{suffix}"
    bad.write_bytes(data[:len(data) // 2])
    return bad


def _corrupt_zip(tmp_path: Path) -> Path:
    data = bytearray(_timm_file(tmp_path, "timm/convnext_atto", ".pth").read_bytes())
    data[-3000:-2000] = b"x" * 1000  # the zip's central directory region
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(bytes(data))
    return bad


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _pickled_module(tmp_path: Path) -> Path:
    path = tmp_path / "whole_model.pth"
    torch.save(torch.nn.Linear(2, 2), path)  # torch.save(model) instead of its state dict
    return path


def _other_model(tmp_path: Path) -> Path:
    fixture = oracle("timm/repvit_m1_0")
    return write_checkpoint({k: torch.zeros(s, dtype=getattr(torch, d)) for k, s, d in fixture["keys"]},
                            tmp_path / "repvit_m1_0.safetensors")


BAD_INPUTS = {
    "truncated .pth": (lambda t: _truncated(t, ".pth"), "is truncated or corrupt"),
    "truncated .safetensors": (lambda t: _truncated(t, ".safetensors"), "truncated"),
    "text file": (lambda t: _write(t, "page.pth", b"<html><body>404 Not Found</body></html>\n"), "is a text file"),
    "empty file": (lambda t: _write(t, "empty.safetensors", b""), "is empty (0 bytes)"),
    "corrupt zip": (_corrupt_zip, "corrupt"),
    "pickle needing code": (_pickled_module, "needs code to load (it pickles torch.nn.modules.linear.Linear)"),
    "another model": (_other_model, "is a checkpoint of repvit_m1_0 (timm layout), not of repvit_m1"),
    "url": (lambda t: "https://huggingface.co/timm/repvit_m1.dist_in1k", "network location"),
    "missing file": (lambda t: t / "absent.pth", "checkpoint not found"),
}
CLIS = {
    "export.onnx": lambda weights, tmp: ("export.onnx", "repvit_m1", "--weights", weights, "--out", str(tmp / "art")),
    "reparam": lambda weights, tmp: ("reparam", "repvit_m1", "--weights", weights, "--out", str(tmp / "d.pt")),
    "convert-weights": lambda weights, tmp: ("models", "convert-weights", "repvit_m1", weights, "--out",
                                             str(tmp / "c.safetensors")),
}
_FAST_CASES = {("reparam", "truncated .pth"), ("export.onnx", "pickle needing code"),
               ("convert-weights", "another model"), ("reparam", "url")}


@pytest.mark.parametrize("cli,case", [pytest.param(c, b, marks=pytest.mark.fast if (c, b) in _FAST_CASES
                                                   else pytest.mark.slow)
                                      for c in CLIS for b in BAD_INPUTS])
def test_bad_weights_are_one_line_errors_with_exit_2(tmp_path, cli, case):
    make, expected = BAD_INPUTS[case]
    weights = str(make(tmp_path))
    result = _cli(*CLIS[cli](weights, tmp_path))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert expected in lines[0]
    assert not any((tmp_path / name).exists() for name in ("art", "d.pt", "c.safetensors")), "nothing is written"


@pytest.mark.fast
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_weights_raise_checkpoint_errors_in_python(tmp_path, case):
    make, expected = BAD_INPUTS[case]
    with pytest.raises((models.CheckpointError, FileNotFoundError), match=None) as info:
        models.create_model("repvit_m1", weights=make(tmp_path))
    assert expected in str(info.value) and "\n" not in str(info.value)
