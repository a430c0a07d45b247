"""The vectorised inverse trigonometric functions against NumPy's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_sklearn.kernels._trig import angle, atan


def _grid(dtype):
    c = np.concatenate(
        [np.linspace(-1, 1, 200_001), 1 - np.logspace(-16, -1, 500), -1 + np.logspace(-16, -1, 500)]
    ).astype(dtype)
    return c, np.sqrt((1 - c) * (1 + c))


@pytest.mark.parametrize("x64, dtype, tol", [(True, np.float64, 4e-16), (False, np.float32, 3e-7)])
def test_angle_matches_arctan2(x64, dtype, tol):
    with jax.enable_x64(x64):
        cos, sin = _grid(dtype)
        ours = np.asarray(jax.jit(angle)(jnp.asarray(sin), jnp.asarray(cos)))
    truth = np.arctan2(sin.astype(np.float64), cos.astype(np.float64))
    assert ours.dtype == dtype
    assert np.abs(ours - truth).max() <= tol * np.pi


def test_atan_matches_arctan():
    with jax.enable_x64(True):
        x = np.concatenate([np.linspace(-50, 50, 100_001), [-np.inf, np.inf, 1e300, -1e-300]])
        ours = np.asarray(jax.jit(atan)(jnp.asarray(x)))
    np.testing.assert_allclose(ours, np.arctan(x), rtol=4e-16, atol=0)
