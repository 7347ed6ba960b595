"""Shared fixtures: template layers and a tiny phantom trial (built once per run)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.simulate.invariance import TINY_TRIAL  # noqa: F401  (the tiny trial's TrialSpec)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _private_tempdir(tmp_path_factory):
    """Functions called outside a ``resstore`` command (ANTsPy's registrations)
    write their temporary files here, removed after the run, not in /tmp."""
    from pipeline.io import private_tempdir

    tmp_path_factory.getbasetemp()  # pytest's own folders stay where they were
    with private_tempdir(prefix="resstore-tests-"):
        yield


@pytest.fixture(scope="session")
def layers():
    from pipeline.simulate.layers import template_layers

    return template_layers()


@pytest.fixture(scope="session")
def tiny_trial(tmp_path_factory):
    """Two subjects x two sessions, every modality, coarse voxels (fast)."""
    from pipeline.simulate import TrialSpec, simulate_trial

    out = tmp_path_factory.mktemp("trial")
    simulate_trial(out, TrialSpec(**TINY_TRIAL))
    return out


def tree_checksums(root) -> dict:
    """sha256 and mode of every file below ``root`` (to prove nothing was written)."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = (
                hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mode)
    return out


def dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
