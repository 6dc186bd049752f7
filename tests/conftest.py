"""Shared pytest fixtures: seeded randomness and a temporary working directory per test."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The command lines log other libraries' output under here, not under ~/.cache (subprocesses inherit it).
os.environ.setdefault("MOBILELAT_LOG_DIR", tempfile.mkdtemp(prefix="mobilelat-test-logs-"))

# Two cores: keep every worker's torch single-threaded so xdist workers do not oversubscribe.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
