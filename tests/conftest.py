"""Shared test fixtures: the read-only reference data beside the project, and tiny models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference" / "official_evss"
DATA = SHARED / "data"


@pytest.fixture(scope="session")
def reference():
    """(vectors npz, gen_weights module) from ../shared/reference/official_evss."""
    if not (REFERENCE / "vectors.npz").is_file():
        pytest.skip(f"official conformance vectors not found at {REFERENCE}")
    import numpy as np
    spec = importlib.util.spec_from_file_location("gen_weights", REFERENCE / "gen_weights.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return np.load(REFERENCE / "vectors.npz"), gen


@pytest.fixture
def tiny_model():
    from evss.config import build_model, preset
    torch.manual_seed(0)
    return build_model(preset("tiny")).eval()
