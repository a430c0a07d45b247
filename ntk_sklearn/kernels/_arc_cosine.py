"""The arc-cosine kernels' angle functions as polynomials: no division, one square root.

For a correlation ``ρ`` in [−1, 1], ``u = |ρ|``, ``z = 1 − u`` and ``θ = arccos u`` in [0, π/2]:

    θ = sqrt(z) · P(z)                      P(z) = arccos(1 − z) / sqrt(z)
    g = sin θ − θ u = sqrt(z) · z · F(z)     F(z) = (sin θ − θ u) / z^{3/2}

``P`` and ``F`` are analytic on [0, 1] (their nearest singularity is ``z = 2``, i.e. ``u = −1``),
so polynomials converge geometrically: 19 terms reach a relative error of 2e-17 (float64), 8
terms 2e-8 (float32, below its rounding). ``tools/fit_arc_cosine.py`` computes them (Chebyshev
interpolation in 60-digit arithmetic, then monomial coefficients in ``z``, which decay like
``2^{−k}``: well conditioned on [0, 1]); ``tests/test_arc_cosine.py`` checks them against
extended precision.

Why: XLA fuses elementwise arithmetic into one loop, but ends a loop at every division or
square root whose result has several users. Through ``atan2`` the arc-cosine step cost seven
memory passes per layer; in this form it is a single loop of multiply-adds. Every arc-cosine
kernel value is exact where it should be: ``u = 1`` gives ``θ = g = 0`` exactly (identical and
antipodal inputs), ``u = 0`` gives ``θ = π/2`` and ``g = 1`` to rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_P_FLOAT64 = (
    1.4142135623730950653,
    0.11785113019774604311,
    0.026516504295916166588,
    0.0078918166870961976506,
    0.0026854115429505864230,
    0.00098869370645919837000,
    0.00038370003612568147094,
    0.00015250797182385683792,
    0.000072870682571377915407,
    -7.1858009923678480247e-6,
    0.00010871230018361806996,
    -0.00020499919349473680623,
    0.00034809874714982453404,
    -0.00043000945159494794304,
    0.00040068828185893020510,
    -0.00026884644677358589363,
    0.00012425167869548126938,
    -0.000035378354952821868479,
    4.7975410330206165536e-6,
)
_F_FLOAT64 = (
    0.94280904158206336647,
    0.047140452079102732698,
    0.0075761440841936866913,
    0.0017537370540482907464,
    0.00048825640107279733240,
    0.00015210969703098849420,
    0.000051135421071154954128,
    0.000018086353983842057733,
    7.0505487588387443853e-6,
    1.3102877692643860353e-6,
    4.5888036859205794055e-6,
    -7.3522459230145453681e-6,
    0.000012958972892402853636,
    -0.000015908860865324382884,
    0.000014905104193931772628,
    -0.000010021487775572117350,
    4.6560372668341140106e-6,
    -1.3327442528758012797e-6,
    1.8291168273383995242e-7,
)
_P_FLOAT32 = (
    1.4142135464083156576,
    0.11785316670023774716,
    0.026474482500567432834,
    0.0082167309626384398323,
    0.0014788598231931452263,
    0.0033384170110533711593,
    -0.0019906429602384127761,
    0.0012117377698107650900,
)
_F_FLOAT32 = (
    0.94280904023770292559,
    0.047140623617051612844,
    0.0075725993661502927202,
    0.0017812223774117152624,
    0.00038571817423865844451,
    0.00035327549550480983273,
    -0.00015466628611202097061,
    0.00011218475237378186544,
)


def _horner(coefs: tuple[float, ...], z: jax.Array) -> jax.Array:
    """``Σ_k coefs[k] z^k``."""
    acc = coefs[-1] * z + coefs[-2]
    for a in reversed(coefs[:-2]):
        acc = acc * z + a
    return acc


def arc_cosine_terms(rho: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(u, θ, g)``: ``u = |ρ|``, ``θ = arccos u``, ``g = sin θ − θ u`` (see the module doc).

    ``ρ`` must lie in [−1, 1]. float32 inputs use the 8-term polynomials, others the 19-term
    ones. Not differentiable at ``u = 1`` (``sqrt(z)``): callers define their derivatives.
    """
    short = jnp.finfo(rho.dtype).eps > 1e-10
    p, f = (_P_FLOAT32, _F_FLOAT32) if short else (_P_FLOAT64, _F_FLOAT64)
    u = jnp.abs(rho)
    z = 1.0 - u
    root = jnp.sqrt(z)
    return u, root * _horner(p, z), root * z * _horner(f, z)
