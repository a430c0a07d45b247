"""Shared pytest fixtures.

The offline data and the neural-tangents golden values live in ``<project root>/../shared``
(override with the ``NTK_SKLEARN_SHARED`` environment variable). Tests that need the data
files are skipped, with the reason, when that folder is absent. The golden values never skip:
without the shared files, the fixtures fall back to the subset vendored in ``tests/data``
(see its README), so the correctness tests always run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENDORED = Path(__file__).resolve().parent / "data"
# Golden-value files of ../shared/reference and their vendored copies or subsets.
FC_REFERENCE = ("nt_fc_public.npz", "nt_fc_subset.npz")
CONV_REFERENCE = ("nt_conv_public.npz", "nt_conv_public.npz")


def shared_dir() -> Path:
    return Path(os.environ.get("NTK_SKLEARN_SHARED", ROOT.parent / "shared"))


def reference_path(name: str, vendored: str) -> tuple[Path, bool]:
    """The shared file ``name`` if present, else the vendored ``vendored``; and whether it
    is the shared (full) one."""
    full = shared_dir() / "reference" / name
    if full.is_file():
        return full, True
    path = VENDORED / vendored
    if not path.is_file():
        pytest.fail(f"neither {full} nor the vendored {path} exists", pytrace=False)
    return path, False


def load_reference(path: Path) -> tuple[dict[str, np.ndarray], list[dict]]:
    """A golden-value file as (arrays, list of case dicts from ``meta_json``)."""
    with np.load(path, allow_pickle=False) as npz:
        data = dict(npz)
    return data, json.loads(str(data["meta_json"]))


def lml_central_differences(model, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of ``model.log_marginal_likelihood`` along each entry of ``theta``."""
    steps = h * np.eye(len(theta))
    return np.array(
        [
            (model.log_marginal_likelihood(theta + e) - model.log_marginal_likelihood(theta - e))
            / (2 * h)
            for e in steps
        ]
    )


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set NTK_SKLEARN_SHARED)")
    return path


@pytest.fixture(scope="session")
def reference_is_full() -> bool:
    """True when ``reference`` is the full ``nt_fc_public.npz`` (63 kernel cases and 2
    dynamics cases), False for the vendored subset (14 kernel cases, 1 dynamics case)."""
    return reference_path(*FC_REFERENCE)[1]


@pytest.fixture(scope="session")
def reference():
    """The neural-tangents 0.6.5 golden values of fully-connected networks: (arrays, list
    of case dicts). The full shared file when present, else the vendored subset: the same
    keys and case dicts (with their original ``index``) for a subset of the cases, so select
    cases by ``case["index"]``, not by position in the list."""
    return load_reference(reference_path(*FC_REFERENCE)[0])


@pytest.fixture(scope="session")
def conv_reference():
    """The neural-tangents 0.6.5 golden values of convolutional networks
    (``nt_conv_public.npz``, vendored whole): (arrays, list of case dicts)."""
    return load_reference(reference_path(*CONV_REFERENCE)[0])
