"""The estimators reproduce the outputs recorded at commit e51b094 (a regression pin).

``tests/data/estimator_fixture.npz`` was recorded by ``tests/data/make_estimator_fixture.py`` on
the code before the estimator core was restructured (issue 21). It is not an independent truth:
the other tests check the same outputs against closed forms, neural-tangents and scikit-learn.
This test checks that the restructuring changed none of them: to 1e-7 (relative to the entry's
scale), 1e-4 for the results of an optimizer (L-BFGS-B's stopping point moves with rounding).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))
import make_estimator_fixture as fixture  # noqa: E402

RECORDED = dict(np.load(fixture.PATH))
#: Fitting some forty models takes about half a minute.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def computed():
    return fixture.outputs()


def test_fixture_covers_the_recorded_keys(computed):
    assert sorted(computed) == sorted(RECORDED)
    assert len(RECORDED) >= 16


@pytest.mark.parametrize("key", sorted(RECORDED))
def test_output_unchanged(computed, key):
    tol = 1e-4 if key.startswith(fixture.LOOSE) else 1e-7
    expected, got = RECORDED[key], computed[key]
    assert got.shape == expected.shape
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * scale, err_msg=key)
