"""Accuracy beside latency: ImageNet classes, each family's evaluation transform, datasets, metrics, the CLI.

The preprocessing is checked pixel for pixel against a transform written here from timm's and
torchvision's definitions; the metrics against a plain torch loop over the same decoded tensors.
"""
from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import models
from models import imagenet
from models.preprocess import preprocess, preprocess_file, resize_size
from profiling.__main__ import main as cli
from profiling.accuracy import Target, evaluate, ranks
from profiling.dataset import DatasetError, iter_batches, load_dataset
from profiling.store import Store
from export_helpers import signal_model  # tests/ is on sys.path

# the evaluation transform each family's reference (timm's pretrained cfg, or the official repo) uses
REFERENCE_TRANSFORMS = {  # model: (crop_pct, interpolation)
    "repvit_m0_9": (0.95, "bicubic"), "edgenext_xx_small": (0.9, "bicubic"), "edgenext_small": (0.95, "bicubic"),
    "edgevit_xxs": (0.875, "bicubic"), "efficientmod_xxs": (0.875, "bicubic"), "mobilevit_xxs": (0.9, "bicubic"),
    "mobilenetv2_100": (0.875, "bicubic"), "mobilenetv3_small_100": (0.875, "bilinear"),
    "convnext_atto": (0.875, "bicubic"), "efficientnet_b0": (0.875, "bicubic"),
    "efficientnetv2_s": (1.0, "bicubic"), "swin_tiny": (0.9, "bicubic"), "vit_tiny_patch16": (0.9, "bicubic"),
}


# -- classes --------------------------------------------------------------------------------------

@pytest.mark.fast
def test_imagenet_classes_are_the_1000_sorted_synsets():
    classes = imagenet.classes()
    synsets = [c.synset for c in classes]
    assert len(classes) == 1000 == len(set(synsets)) and synsets == sorted(synsets)
    assert all(imagenet.SYNSET_PATTERN.match(s) for s in synsets)
    assert (classes[0].synset, classes[0].name) == ("n01440764", "tench")
    assert (classes[1].name, classes[207].name, classes[999].name) == ("goldfish", "golden retriever", "toilet tissue")
    assert imagenet.synset_index()["n02099601"] == 207 and imagenet.class_name(5, num_classes=10) == "class 5"


# -- preprocessing ----------------------------------------------------------------------------------

def _reference_transform(image: Image.Image, size: int, crop_pct: float, interpolation: str,
                         mean, std) -> tuple[np.ndarray, np.ndarray]:
    """timm's eval transform for a square size, written from its definition: Resize(floor(size / crop_pct))
    on the shorter side (torchvision: the longer side int(scale * long / short)), CenterCrop(size) with
    offsets int(round((side - size) / 2.0)), ToTensor, Normalize. Returns (cropped uint8 HWC, normalized CHW)."""
    scale = int(math.floor(size / crop_pct))
    w, h = image.size
    if w <= h:
        new_w, new_h = scale, int(scale * h / w)
    else:
        new_w, new_h = int(scale * w / h), scale
    pil_filter = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[interpolation]
    resized = image.convert("RGB").resize((new_w, new_h), pil_filter) if (new_w, new_h) != (w, h) else image.convert("RGB")
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    crop = np.asarray(resized)[top:top + size, left:left + size]
    tensor = torch.from_numpy(crop.copy()).permute(2, 0, 1).float().div(255)
    normalized = (tensor - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return crop, normalized.numpy()


@pytest.mark.fast
@pytest.mark.parametrize(("size", "crop_pct", "expected"), [(224, 0.875, 256), (224, 0.95, 235), (256, 0.95, 269),
                                                            (224, 0.9, 248), (256, 0.9, 284), (300, 1.0, 300)])
def test_resize_size_is_floor_of_size_over_crop_pct(size, crop_pct, expected):
    assert resize_size((size, size), crop_pct) == (expected, expected)


@pytest.mark.fast
def test_every_family_declares_its_reference_transform():
    for name, (crop_pct, interpolation) in REFERENCE_TRANSFORMS.items():
        spec = models.model_spec(name)
        assert (spec.crop_pct, spec.interpolation) == (crop_pct, interpolation), name
    families = {models.model_spec(name).family for name in REFERENCE_TRANSFORMS}
    assert families == set(models.list_families())


@pytest.mark.fast
@pytest.mark.parametrize("name", sorted(REFERENCE_TRANSFORMS))
@pytest.mark.parametrize("source", [(500, 375), (333, 500), (257, 256)])  # (width, height): landscape, portrait, near-square
def test_preprocessing_matches_the_reference_pixel_for_pixel(name, source):
    spec = models.model_spec(name)
    size = spec.input_size[1]
    rng = np.random.default_rng(sum(source))
    image = Image.fromarray(rng.integers(0, 256, (source[1], source[0], 3), dtype=np.uint8))
    crop, expected = _reference_transform(image, size, spec.crop_pct, spec.interpolation, spec.mean, spec.std)
    ours = preprocess(image, spec)
    assert ours.shape == (3, size, size) and ours.dtype == np.float32
    ours_pixels = np.rint((ours * np.asarray(spec.std).reshape(3, 1, 1) + np.asarray(spec.mean).reshape(3, 1, 1))
                          * 255).astype(np.int64).transpose(1, 2, 0)
    assert np.array_equal(ours_pixels, crop.astype(np.int64)), f"{name}: pixels differ from the reference transform"
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


@pytest.mark.fast
@pytest.mark.parametrize(("size", "crop_pct"), [(224, 0.875), (224, 0.95), (256, 0.95)])
def test_rounding_of_size_over_crop_pct_at_the_sizes_where_it_matters(size, crop_pct):
    spec = models.model_spec("repvit_m0_9").with_input_size(size)
    import dataclasses
    spec = dataclasses.replace(spec, crop_pct=crop_pct)
    image = Image.fromarray(np.random.default_rng(size).integers(0, 256, (301, 401, 3), dtype=np.uint8))
    _, expected = _reference_transform(image, size, crop_pct, "bicubic", spec.mean, spec.std)
    np.testing.assert_allclose(preprocess(image, spec), expected, atol=1e-6, rtol=0)


@pytest.mark.fast
def test_grayscale_rgba_cmyk_and_palette_images_are_converted(tmp_path):
    spec = models.model_spec("repvit_m0_9").with_input_size(32)
    rng = np.random.default_rng(1)
    gray = Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8))
    for mode, image in {"L": gray, "RGBA": gray.convert("RGBA"), "CMYK": gray.convert("CMYK"),
                        "P": gray.convert("P")}.items():
        path = tmp_path / f"{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
        image.save(path)
        assert Image.open(path).mode == mode
        array = preprocess_file(path, spec)
        assert array.shape == (3, 32, 32) and np.isfinite(array).all()
    # a gray image gives three equal channels before normalization
    pixels = preprocess_file(tmp_path / "L.png", spec) * np.asarray(spec.std).reshape(3, 1, 1) \
        + np.asarray(spec.mean).reshape(3, 1, 1)
    np.testing.assert_allclose(pixels[0], pixels[1], atol=1e-6)


# -- datasets -------------------------------------------------------------------------------------

def _image(path: Path, seed: int, size=(40, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def _folder(root: Path, classes=("n01440764", "n01443537"), per_class=3) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            _image(root / name / f"{i}.png", seed=10 * c + i, size=(36 + 5 * i, 44))
    return root


@pytest.mark.fast
def test_folder_of_synsets_and_of_indices_and_a_list(tmp_path):
    data = load_dataset(_folder(tmp_path / "a"))
    assert len(data) == 6 and data.classes() == [0, 1] and data.layout == "folder"
    data = load_dataset(_folder(tmp_path / "b", classes=("3", "999")))
    assert data.classes() == [3, 999]
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\na/n01440764/0.png,n01443537\n\nb/3/1.png, 7\n")
    data = load_dataset(listing)
    assert [(p.name, label) for p, label in data.items] == [("0.png", 1), ("1.png", 7)] and data.layout == "list"
    assert len(load_dataset(tmp_path / "a").limited(3)) == 3


@pytest.mark.fast
@pytest.mark.parametrize(("make", "message"), [
    (lambda root: root.mkdir(), "has no class folders"),
    (lambda root: None, "does not exist"),
    (lambda root: (root / "n01440764").mkdir(parents=True), "holds no images"),
    (lambda root: _folder(root, classes=("n01440764", "dogs")), "dogs are neither ImageNet synset ids"),
    (lambda root: _folder(root, classes=("n00000001",)), "synset(s) n00000001 are not one of the 1000"),
    (lambda root: _folder(root, classes=("1", "1005")), "label(s) 1005 are outside the model's 1000 classes"),
])
def test_bad_data_paths_are_one_clear_error(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DatasetError, match=None) as error:
        load_dataset(root)
    assert message in str(error.value)


# -- metrics --------------------------------------------------------------------------------------

@pytest.mark.fast
def test_ranks_break_ties_by_the_lower_class_index():
    logits = np.array([[1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 0.0],
                       [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
                       [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]])
    labels = np.array([6, 0, 2])
    # independent: position of the label in a stable sort on -logit
    expected = [list(np.argsort(-row, kind="stable")).index(label) for row, label in zip(logits, labels)]
    assert list(ranks(logits, labels)) == expected == [5, 0, 5]


class _Batch:
    def __init__(self, inputs, labels, skipped=()):
        self.inputs, self.labels, self.skipped = inputs, labels, list(skipped)


@pytest.mark.fast
def test_evaluate_matches_a_plain_loop_with_ties_and_skips():
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(9, 3, 2, 2)).astype(np.float32)
    labels = rng.integers(0, 10, 9)
    weight = rng.normal(size=(10, 12)).astype(np.float32)

    def reference(x):
        return np.rint(x.reshape(len(x), -1) @ weight.T)  # rounded: many ties in the top 5

    def other(x):
        return reference(x) * np.linspace(0.5, 1.5, 10, dtype=np.float32)

    batches = [_Batch(inputs[:5], labels[:5], skipped=[(Path("bad.jpg"), 1, "not an image")]),
               _Batch(inputs[5:], labels[5:])]
    targets = [Target("training", "torch", "fp32", "torch", reference), Target("artifact", "onnx", "fp32", "x", other)]
    first, second = evaluate("m", targets, batches, images=10, dataset="d", dataset_sha256="s", input_shape=[1, 3, 2, 2],
                             crop_pct=0.875, interpolation="bicubic")
    # independent: torch.topk-free ranking per image, ties to the lower index
    for result, fn in ((first, reference), (second, other)):
        logits = torch.from_numpy(fn(inputs))
        order = [sorted(range(10), key=lambda c: (-float(row[c]), c)) for row in logits]
        top1 = sum(o[0] == int(label) for o, label in zip(order, labels))
        top5 = sum(int(label) in o[:5] for o, label in zip(order, labels))
        assert result.top1 == pytest.approx(100 * top1 / 10) and result.top5 == pytest.approx(100 * top5 / 10)
        assert result.images == 10 and result.evaluated == 9 and result.skipped == 1
    agree = (other(inputs).argmax(1) == reference(inputs).argmax(1)).mean() * 100
    deviation = np.abs(other(inputs) - reference(inputs))
    assert second.agreement == pytest.approx(agree) and first.agreement == 100.0
    assert second.mean_abs_dev == pytest.approx(deviation.mean()) and second.max_abs_dev == pytest.approx(deviation.max())
    assert second.top1_drop == pytest.approx(first.top1 - second.top1)
    assert second.extra["skipped_files"][0]["reason"] == "not an image"


# -- the command ----------------------------------------------------------------------------------

def _independent_torch_loop(name: str, data: Path, size: int) -> tuple[float, float, int]:
    """top-1 and top-5 (percent of all listed files) and skips, from a plain loop over the decoded tensors."""
    spec = models.model_spec(name).with_input_size(size)
    torch.manual_seed(0)
    model = models.create_model(name).eval()
    files = sorted(p for p in data.rglob("*") if p.is_file())
    correct1 = correct5 = skipped = 0
    for path in files:
        label = imagenet.synset_index()[path.parent.name]
        try:
            x = torch.from_numpy(preprocess_file(path, spec))[None]
        except OSError:
            skipped += 1
            continue
        with torch.no_grad():
            logits = model(x)[0]
        order = sorted(range(logits.numel()), key=lambda c: (-float(logits[c]), c))
        correct1 += order[0] == label
        correct5 += label in order[:5]
    return 100 * correct1 / len(files), 100 * correct5 / len(files), skipped


@pytest.mark.fast
def test_accuracy_command_stores_rows_that_match_a_torch_loop(tmp_path, capsys):
    data = _folder(tmp_path / "data", per_class=2)
    (data / "n01443537" / "broken.jpg").write_bytes(b"not an image at all")
    db = tmp_path / "r.db"
    code = cli(["accuracy", "repvit_m0_9", "--data", str(data), "--input-size", "32", "--formats", "torch",
                "--db", str(db), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    document = json.loads(out)
    training, deploy = document["results"]
    top1, top5, skipped = _independent_torch_loop("repvit_m0_9", data, 32)
    assert (training["form"], deploy["form"]) == ("training", "deploy")
    assert training["top1"] == pytest.approx(top1) and training["top5"] == pytest.approx(top5)
    assert training["images"] == 5 and training["skipped"] == skipped == 1 and training["evaluated"] == 4
    assert deploy["agreement"] == 100.0 and deploy["max_abs_dev"] < 1e-4
    with Store(db, readonly=True) as store:
        rows = store.query_accuracy(model="repvit_m0_9")
        (run,) = store.runs()
    assert [r["form"] for r in rows] == ["training", "deploy"] and rows[0]["crop_pct"] == 0.95
    assert rows[0]["input_shape"] == [1, 3, 32, 32] and run["run_id"] == document["run_id"]
    assert cli(["show", "--accuracy", "--db", str(db), "--as", "json", "--run", "latest"]) == 0
    assert json.loads(capsys.readouterr().out) == rows


@pytest.mark.fast
def test_one_class_folder(tmp_path, capsys):
    data = _folder(tmp_path / "data", classes=("n15075141",), per_class=2)
    assert cli(["accuracy", "repvit_m0_9", "--data", str(data), "--input-size", "32", "--formats", "torch",
                "--db", str(tmp_path / "r.db"), "--json"]) == 0
    training = json.loads(capsys.readouterr().out)["results"][0]
    top1, top5, _ = _independent_torch_loop("repvit_m0_9", data, 32)
    assert training["images"] == 2 and training["top1"] == pytest.approx(top1) and training["top5"] == pytest.approx(top5)


@pytest.mark.fast
@pytest.mark.parametrize("args", [["--data", "MISSING"], ["--data", "EMPTY"], ["--data", "DATA", "--limit", "0"],
                                  ["--data", "DATA", "--formats", "torch,caffe"], ["--data", "OUTSIDE"],
                                  ["--data", "DATA", "--formats", "onnx,tflite", "--precision", "int8_dynamic"]])
def test_bad_input_is_exit_2_and_writes_nothing(tmp_path, capsys, args):
    (tmp_path / "EMPTY").mkdir()
    _folder(tmp_path / "DATA", per_class=1)
    _folder(tmp_path / "OUTSIDE", classes=("3", "1000"), per_class=1)
    args = [str(tmp_path / a) if a in ("MISSING", "EMPTY", "DATA", "OUTSIDE") else a for a in args]
    db = tmp_path / "r.db"
    assert cli(["accuracy", "repvit_m0_9", "--input-size", "32", "--db", str(db), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not db.exists() or not sqlite3.connect(db).execute(
        "SELECT name FROM sqlite_master WHERE name = 'accuracy'").fetchone() or not \
        sqlite3.connect(db).execute("SELECT COUNT(*) FROM accuracy").fetchone()[0]


@pytest.mark.fast
def test_decoding_runs_one_batch_ahead_and_keeps_order(tmp_path):
    data = load_dataset(_folder(tmp_path / "data", per_class=5))
    spec = models.model_spec("repvit_m0_9").with_input_size(32)
    batches = list(iter_batches(data, lambda p: preprocess_file(p, spec), (3, 32, 32), batch_size=3, workers=2))
    assert [len(b.inputs) for b in batches] == [3, 3, 3, 1]
    assert [p for b in batches for p in b.paths] == [p for p, _ in data.items]


@pytest.mark.slow
def test_identical_artifact_agrees_and_a_shuffled_one_does_not(tmp_path, capsys):
    """An ONNX export of the evaluated network agrees 100% at parity-level deviation; one whose classifier
    rows were shuffled between classes (exported on purpose from a changed copy) shows a large agreement drop."""
    from export import onnx as onnx_export
    data = _folder(tmp_path / "data", classes=("n01440764", "n01443537", "n15075141"), per_class=4)
    spec = models.model_spec("repvit_m0_9").with_input_size(32)
    torch.manual_seed(0)
    wrong = signal_model("repvit_m0_9")  # the weights the command evaluates without --weights
    head = [m for m in wrong.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        perm = torch.randperm(head.out_features)  # the classes' rows shuffled: a wrong artifact that still runs
        head.weight.copy_(head.weight[perm])
        head.bias.copy_(head.bias[perm])
    scaled = onnx_export.export(wrong, spec, tmp_path / "wrong", quiet=True, input_size=(32, 32))
    db = tmp_path / "r.db"
    assert cli(["accuracy", "repvit_m0_9", "--data", str(data), "--input-size", "32", "--formats", "torch,onnx",
                "--artifacts", str(tmp_path / "artifacts"), "--artifact", str(scaled.path), "--db", str(db),
                "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    training, deploy, same, changed = results
    assert same["form"] == "artifact" and same["agreement"] == 100.0 and same["max_abs_dev"] < 1e-3
    assert same["artifact_sha256"] != changed["artifact_sha256"] == scaled.sha256
    assert changed["agreement"] <= 50.0 and changed["mean_abs_dev"] > 100 * same["mean_abs_dev"]
    with Store(db, readonly=True) as store:
        assert [r["artifact_sha256"] for r in store.query_accuracy(form="artifact")] == [same["artifact_sha256"],
                                                                                         scaled.sha256]


@pytest.mark.fast
def test_accuracy_rows_land_in_one_transaction_or_not_at_all(tmp_path):
    from profiling.accuracy import AccuracyResult
    common = dict(model="m", format="torch", precision="fp32", runtime="torch", dataset="d", dataset_sha256="s",
                  images=2, evaluated=2, skipped=0, top1=50.0, top5=100.0, agreement=100.0, mean_abs_dev=0.0,
                  max_abs_dev=0.0, top1_drop=0.0, images_per_s=1.0, input_shape=[1, 3, 32, 32], crop_pct=0.95,
                  interpolation="bicubic", run_id="r1")
    good = AccuracyResult(form="training", **common)
    bad = AccuracyResult(form="deploy", **{**common, "top1": None})  # NOT NULL: the insert fails
    with Store(tmp_path / "r.db") as store:
        with pytest.raises(sqlite3.IntegrityError):
            store.insert_accuracy([good, bad])
        assert store.query_accuracy() == [] and store.runs() == []
        store.insert_accuracy([good], label="ok", command="python -m profiling accuracy m")
        (row,) = store.query_accuracy(run_id="r1")
        assert row["form"] == "training" and row["id"] == good.id and store.runs()[0]["label"] == "ok"


# -- models predict -------------------------------------------------------------------------------

@pytest.mark.fast
def test_models_predict_gives_the_top5_names_and_probabilities(tmp_path, capsys):
    from models.__main__ import main as models_cli
    _image(tmp_path / "a.png", seed=5, size=(50, 70))
    Image.open(tmp_path / "a.png").convert("L").save(tmp_path / "gray.png")
    assert models_cli(["predict", "repvit_m0_9", str(tmp_path / "a.png"), str(tmp_path / "gray.png"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    spec = models.model_spec("repvit_m0_9")
    torch.manual_seed(0)
    model = models.create_model("repvit_m0_9").eval()
    for record, name in zip(document["predictions"], ("a.png", "gray.png")):
        with torch.no_grad():
            probabilities = torch.softmax(model(torch.from_numpy(preprocess_file(tmp_path / name, spec))[None])[0]
                                          .double(), 0)
        expected = sorted(range(1000), key=lambda c: (-float(probabilities[c]), c))[:5]
        assert [e["index"] for e in record["top5"]] == expected
        assert [e["name"] for e in record["top5"]] == [imagenet.classes()[i].name for i in expected]
        np.testing.assert_allclose([e["probability"] for e in record["top5"]],
                                   [float(probabilities[i]) for i in expected], rtol=1e-5)
    capsys.readouterr()
    assert models_cli(["predict", "repvit_m0_9", str(tmp_path / "missing.png")]) == 2
    assert "no such image file" in capsys.readouterr().err


# -- the report -----------------------------------------------------------------------------------

def _accuracy_row(model, sha, precision, top1, drop, form="artifact", fmt="onnx"):
    from profiling.accuracy import AccuracyResult
    return AccuracyResult(model=model, form=form, format=fmt, precision=precision, runtime="onnxruntime",
                          dataset="val", dataset_sha256="s", images=100, evaluated=100, skipped=0, top1=top1,
                          top5=top1 + 10, agreement=99.0, mean_abs_dev=0.01, max_abs_dev=0.1, top1_drop=drop,
                          images_per_s=50.0, input_shape=[1, 3, 224, 224], crop_pct=0.95, interpolation="bicubic",
                          artifact_sha256=sha, run_id="acc")


@pytest.mark.fast
def test_report_joins_measured_top1_by_sha_draws_the_front_and_flags_int8(tmp_path):
    from test_store import make_result
    db = tmp_path / "r.db"
    with Store(db) as store:  # three artifacts: a is fast and accurate, b slower and worse, c (int8) fastest
        store.insert_many([make_result(model="repvit_m0_9", median=2.0, artifact_sha256="a" * 64),
                           make_result(model="repvit_m1_0", median=3.0, artifact_sha256="b" * 64),
                           make_result(model="repvit_m1_1", median=1.0, artifact_sha256="c" * 64,
                                       precision="int8_dynamic")])
        store.insert_accuracy([_accuracy_row("repvit_m0_9", "a" * 64, "fp32", 78.0, 0.1),
                               _accuracy_row("repvit_m1_0", "b" * 64, "fp32", 70.0, 0.0),
                               _accuracy_row("repvit_m1_1", "c" * 64, "int8_dynamic", 60.0, 1.5),
                               _accuracy_row("repvit_m1_5", "d" * 64, "fp32", 90.0, 0.0)])  # never measured
    out = tmp_path / "report"
    assert cli(["report", "--db", str(db), "--out", str(out)]) == 0
    assert (out / "measured_top1_vs_latency.png").read_bytes().startswith(b"\x89PNG")
    markdown = (out / "report.md").read_text()
    section = markdown.split("## Measured accuracy beside latency", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| repvit")]
    assert [row.split(" | ")[0][2:] for row in rows] == ["repvit_m0_9", "repvit_m1_0", "repvit_m1_1"]
    assert "| 78.00 |" in rows[0] and rows[0].endswith("| 78.7 |")  # published top-1 in its own column
    assert "+1.50 **FLAG**" in rows[2] and "FLAG" not in rows[0] + rows[1]
    fronts = [line for line in section.splitlines() if line.startswith("- ")]
    assert len(fronts) == 2  # one per configuration: fp32 and int8_dynamic
    fp32 = next(line for line in fronts if "repvit_m0_9" in line)
    assert "repvit_m1_0" not in fp32 and any("repvit_m1_1" in line for line in fronts)


@pytest.mark.slow  # a litert-torch conversion of the tiny network
def test_onnx_and_tflite_forwards_match_the_torch_network(tmp_path):
    from profiling.accuracy import onnx_forward, tflite_forward, torch_forward
    from profiling_helpers import tiny_module, tiny_onnx, tiny_tflite
    inputs = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    expected = torch_forward(tiny_module())(inputs)
    for artifact, forward in ((tiny_onnx(tmp_path), onnx_forward), (tiny_tflite(tmp_path), tflite_forward)):
        logits = forward(artifact)(inputs)
        assert logits.shape == (3, 10)
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4, err_msg=artifact.format)


@pytest.mark.fast
def test_non_square_sizes_scale_by_one_factor_as_timm_resize_keep_ratio():
    import dataclasses
    spec = dataclasses.replace(models.model_spec("repvit_m0_9").with_input_size(160, 224), crop_pct=0.9)
    image = Image.fromarray(np.random.default_rng(7).integers(0, 256, (300, 500, 3), dtype=np.uint8))
    # timm ResizeKeepRatio(longest=0) to floor((160, 224) / 0.9) = (177, 248): ratio = min(300/177, 500/248)
    ratio = min(300 / 177, 500 / 248)
    new_h, new_w = round(300 / ratio), round(500 / ratio)
    resized = np.asarray(image.resize((new_w, new_h), Image.BICUBIC))
    top, left = int(round((new_h - 160) / 2.0)), int(round((new_w - 224) / 2.0))
    crop = resized[top:top + 160, left:left + 224].astype(np.float32) / 255
    expected = ((crop - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)).transpose(2, 0, 1)
    np.testing.assert_allclose(preprocess(image, spec), expected, atol=1e-6, rtol=0)
