"""Fit the polynomials of ``ntk_sklearn/kernels/_arc_cosine.py`` (needs ``mpmath``).

For ``u = |ρ|`` in [0, 1] and ``z = 1 − u``, with ``θ = arccos u``:

    P(z) = θ / sqrt(z)                       (P(0) = √2)
    F(z) = (sin θ − θ u) / z^{3/2}           (F(0) = 2√2/3)

Both are analytic on [0, 1] with their nearest singularity at ``z = 2`` (``u = −1``), so the
Chebyshev interpolant on ``n`` points converges like ``(3 + 2√2)^{−n}``, and the Taylor
coefficients around ``z = 0`` decay like ``2^{−k}``: the monomial form is well conditioned on
[0, 1]. This script computes the interpolants in 60-digit arithmetic, converts them to monomial
coefficients in ``z``, reports their largest relative error on a fine grid, and prints the
coefficient tuples to paste into the module.

    python tools/fit_arc_cosine.py            # float64 (19 terms) and float32 (8 terms)
"""

from __future__ import annotations

import argparse

import mpmath as mp

mp.mp.dps = 60


def p_fn(z):
    return mp.sqrt(2) if z == 0 else mp.acos(1 - z) / mp.sqrt(z)


def f_fn(z):
    if z == 0:
        return 2 * mp.sqrt(2) / 3
    u = 1 - z
    theta = mp.acos(u)
    return (mp.sin(theta) - theta * u) / z ** mp.mpf(1.5)


def chebyshev_to_monomial(fn, n: int) -> list:
    """Monomial coefficients (in ``z``, lowest first) of the interpolant at n Chebyshev points."""
    nodes = [(mp.cos(mp.pi * (k + mp.mpf(1) / 2) / n) + 1) / 2 for k in range(n)]
    values = [fn(x) for x in nodes]
    cheb = [
        2 * sum(values[k] * mp.cos(mp.pi * j * (k + mp.mpf(1) / 2) / n) for k in range(n)) / n
        for j in range(n)
    ]
    cheb[0] /= 2
    # T_j(t) as monomials in t, then t = 2z − 1.
    basis = [[mp.mpf(1)], [mp.mpf(0), mp.mpf(1)]]
    for _ in range(2, n):
        shifted = [mp.mpf(0)] + [2 * a for a in basis[-1]]
        prev = basis[-2] + [mp.mpf(0)] * (len(shifted) - len(basis[-2]))
        basis.append([a - b for a, b in zip(shifted, prev, strict=True)])
    in_t = [mp.mpf(0)] * n
    for c, poly in zip(cheb, basis, strict=False):
        for i, a in enumerate(poly):
            in_t[i] += c * a
    in_z = [mp.mpf(0)] * n
    for i, a in enumerate(in_t):
        for k in range(i + 1):
            in_z[k] += a * mp.binomial(i, k) * 2**k * (-1) ** (i - k)
    return in_z


def max_relative_error(fn, coefs, points: int = 4001):
    worst = mp.mpf(0)
    for i in range(points):
        z = mp.mpf(i) / (points - 1)
        value = mp.mpf(0)
        for a in reversed(coefs):
            value = value * z + a
        worst = max(worst, abs(value / fn(z) - 1))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terms", type=int, nargs=2, default=(19, 8), metavar=("F64", "F32"))
    args = parser.parse_args()
    for label, n in zip(("float64", "float32"), args.terms, strict=True):
        for name, fn in (("P", p_fn), ("F", f_fn)):
            coefs = chebyshev_to_monomial(fn, n)
            err = max_relative_error(fn, coefs)
            print(f"# {name} {label}: {n} terms, max relative error {mp.nstr(err, 3)}")
            print(f"_{name}_{label.upper()} = (")
            for a in coefs:
                print(f"    {mp.nstr(a, 20, strip_zeros=False)},")
            print(")")


if __name__ == "__main__":
    main()
