"""Mobile vision backbones in plain PyTorch, behind a small explicit registry.

>>> import models
>>> models.list_models("repvit_*")[:2]
['repvit_m0_6', 'repvit_m0_9']
>>> model = models.create_model("repvit_m1")
>>> spec = models.model_spec("repvit_m1")     # input shape, mean/std, the paper's figures

Importing this package does not import any model family; the first name looked up imports the
family files listed in ``models/registry.py`` (once) and indexes the names their ``VARIANTS`` declare.
"""
from models.registry import UnknownModelError, create_model, list_families, list_models, model_spec
from models.spec import ModelSpec
from models.weights import CheckpointError, CheckpointFormatError, CheckpointMismatchError, DeployCheckpointError

__all__ = ["CheckpointError", "CheckpointFormatError", "CheckpointMismatchError", "DeployCheckpointError", "ModelSpec",
           "UnknownModelError", "create_model", "list_families", "list_models", "model_spec"]
