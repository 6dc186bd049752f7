"""ONNX export: a checked, static, slimmed graph; dynamic batch on request; onnxruntime parity.

ONNX parity for every registered model is in ``tests/test_zoo_parity.py`` (the ``onnx-*`` cases,
not marked slow), so it is not repeated here; this file checks what is particular to ONNX.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import models
import reparam
from export import load_artifact
from export import onnx as export_onnx
from export.errors import UnsupportedOptionError
from export_helpers import signal_model  # tests/ is on sys.path

MODEL = "repvit_m0_6"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One static export of the smallest RepViT at its own size, shared by the tests below."""
    out_dir = tmp_path_factory.mktemp("onnx")
    model = signal_model(MODEL)
    artifact = export_onnx.export(model, models.model_spec(MODEL), out_dir, quiet=True)
    return artifact, model  # the model: the exact weights exported (export never mutates them)


@pytest.mark.fast
def test_graph_is_static_checked_and_named(exported):
    exported, _ = exported
    graph = onnx.load(str(exported.path))
    onnx.checker.check_model(graph, full_check=True)
    assert graph.opset_import[0].version >= 17
    (graph_input,) = graph.graph.input
    (graph_output,) = graph.graph.output
    assert graph_input.name == "image" and graph_output.name == "logits"
    assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [1, 3, 224, 224]
    assert [d.dim_value for d in graph_output.type.tensor_type.shape.dim] == [1, 1000]
    manifest = load_artifact(exported.path)  # what profiling reads agrees with the graph
    assert manifest.input_shape == [1, 3, 224, 224] and manifest.input_name == graph_input.name


@pytest.mark.fast
def test_deploy_graph_is_smaller_than_training_form(exported, tmp_path):
    exported, model = exported
    deploy_ops = [node.op_type for node in onnx.load(str(exported.path)).graph.node]
    assert "BatchNormalization" not in deploy_ops  # folded by reparameterization
    training = export_onnx.export(model, models.model_spec(MODEL), tmp_path,
                                  reparameterize=False, quiet=True)
    training_ops = [node.op_type for node in onnx.load(str(training.path)).graph.node]
    assert len(deploy_ops) < len(training_ops)
    assert training.params > exported.params


@pytest.mark.fast
def test_onnxruntime_matches_eager_deploy_model(exported):
    exported, model = exported
    spec = models.model_spec(MODEL)
    deploy = reparam.reparameterize(model)
    session = export_onnx.session(exported.path, threads=1)
    x = spec.sample_inputs(count=1, seed=7)[0]  # another seed than the gate's
    with torch.no_grad():
        expected = deploy(x).numpy()
    (got,) = session.run(["logits"], {"image": x.numpy()})
    assert np.max(np.abs(got - expected)) <= 1e-4 * np.max(np.abs(expected)) + 1e-5
    assert exported.parity["inputs"] == 3  # the gate ran its default three seeded inputs


@pytest.mark.fast
def test_dynamic_batch_runs_any_batch(tmp_path):
    spec = models.model_spec(MODEL)
    model = signal_model(MODEL)
    artifact = export_onnx.export(model, spec, tmp_path, dynamic_batch=True,
                                  input_size=(64, 64), quiet=True)
    graph = onnx.load(str(artifact.path))
    batch_dim = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch" and batch_dim.dim_value == 0
    session = export_onnx.session(artifact.path, threads=1)
    x = spec.with_input_size(64, 64).sample_inputs(count=1, seed=3, batch=5)[0]
    with torch.no_grad():
        expected = reparam.reparameterize(model)(x).numpy()
    (got,) = session.run(["logits"], {"image": x.numpy()})
    assert got.shape == (5, 1000)
    assert np.max(np.abs(got - expected)) <= 1e-4 * np.max(np.abs(expected)) + 1e-5


@pytest.mark.fast
def test_old_opset_is_refused_before_any_model_work(tmp_path):
    class MustNotRun(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("the model ran before the options were checked")

    with pytest.raises(UnsupportedOptionError, match="opset 13"):
        export_onnx.export(MustNotRun(), models.model_spec(MODEL), tmp_path, opset=13, input_size=(64, 64),
                           quiet=True)
    assert not (tmp_path / MODEL / f"{MODEL}.onnx").exists()


class _Means(torch.nn.Module):
    """Spatial means as SE blocks and classifiers write them, and a channel mean that must stay."""

    def forward(self, x):
        scaled = x * torch.sigmoid(x.mean((2, 3), keepdim=True))  # SE-style, keeps H and W as 1
        pooled = scaled.mean((-2, -1))  # the classifier's pooling, drops them
        return torch.cat((pooled, x.mean(1).flatten(1)[:, :3]), dim=1)  # a channel mean: not spatial


@pytest.mark.fast
@pytest.mark.parametrize("opset", [17, 18])  # axes as an attribute (17) and as an input (18)
def test_spatial_means_become_global_average_pools(tmp_path, opset):
    path = tmp_path / "means.onnx"
    x = torch.randn(1, 8, 7, 5, generator=torch.Generator().manual_seed(0))
    torch.onnx.export(_Means(), (x,), str(path), opset_version=opset, dynamo=False, input_names=["x"])
    plain = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    rewritten = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    assert export_onnx.global_average_pools(rewritten) == 2
    onnx.checker.check_model(rewritten, full_check=True)
    ops = [node.op_type for node in rewritten.graph.node]
    assert ops.count("GlobalAveragePool") == 2 and ops.count("ReduceMean") == 1  # the channel mean stays
    outputs = []
    for graph in (plain, rewritten):
        graph_path = tmp_path / f"g{len(outputs)}.onnx"
        onnx.save(graph, str(graph_path))
        outputs.append(export_onnx.session(graph_path).run(None, {"x": x.numpy()})[0])
    assert outputs[0].shape == outputs[1].shape == (1, 11)
    scale = float(np.abs(outputs[0]).max())  # the same function: float32 summation order only
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(outputs[1], _Means()(x).numpy(), rtol=0, atol=1e-6 * scale)


@pytest.mark.fast
def test_exported_graph_has_no_spatial_reduce_mean(exported):
    exported, _ = exported
    ops = [node.op_type for node in onnx.load(str(exported.path)).graph.node]
    assert "ReduceMean" not in ops and ops.count("GlobalAveragePool") >= 1  # RepViT: SE blocks and the head
