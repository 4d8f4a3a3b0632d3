"""Shared fixtures: one real SmolLM2 backend per test session (loading takes ~0.3 s, but
the few-shot prefix it caches is what makes later tests fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: Small token budgets keep the real model fast in tests; verdict validity is the point.
FAST = {"max_tokens": 40}


@pytest.fixture(scope="session")
def local_backend():
    from icrm_sgl.engines.local import LocalBackend, LocalOptions

    backend = LocalBackend(LocalOptions(n_ctx=4096))
    yield backend
    backend.shutdown()


@pytest.fixture(scope="session")
def pairwise_model(local_backend):
    from icrm_sgl import ICRM

    return ICRM(rm_type="pairwise", num_shots=1, backend=local_backend)


@pytest.fixture(scope="session")
def individual_model(local_backend):
    from icrm_sgl import ICRM

    return ICRM(rm_type="individual", num_shots=1, backend=local_backend)


@pytest.fixture
def pairwise_example():
    return json.loads((EXAMPLES / "test_pairwise.json").read_text())


@pytest.fixture
def individual_example():
    return json.loads((EXAMPLES / "test_individual.json").read_text())
