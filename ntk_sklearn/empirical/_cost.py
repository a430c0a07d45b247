"""The cost model behind ``method="auto"`` and the default ``batch_size`` of ``empirical_ntk``.

Notation: ``N1``, ``N2`` inputs, ``k`` output units per input, ``P`` parameters, ``F`` the FLOPs
of one forward pass on one input (XLA's cost analysis of the jitted forward pass; ``2 P``, the
count of a dense network, when unavailable), ``A`` the number of intermediate values of that
forward pass (from its jaxpr), ``b`` rows per block, ``B`` the number of block pairs computed
(``⌈N1/b⌉ ⌈N2/b⌉``, or about half of it with ``x2=None``), ``kk = k`` when outputs are averaged
or summed and ``kk = k²`` when all output pairs are kept. After Novak, Sohl-Dickstein &
Schoenholz (2022), "Fast Finite Width Neural Tangent Kernel" (ICML), Table 1, adapted to the
blocked loops of this module (column blocks outside, row blocks inside):

* ``"jacobian"`` (Jacobian contraction). A column block's Jacobian (``b k P`` values, ``k``
  reverse passes of about ``3 F`` per input) is built once; the row block's is rebuilt for every
  pair (it cannot be kept for all blocks in bounded memory), ``R = N2 + B b`` Jacobian rows in
  all. Each pair contracts two blocks, ``2 P b² kk`` FLOPs, reading ``2 b k P`` values::

      flops  ≈ 3 F k R + 2 P kk B b²         values moved ≈ k P (R + 2 B b)
      memory ≈ 2 b k P + b (k + 1) A + b² kk

  (``b (k + 1) A``: the forward pass's intermediates of the block and the cotangents of the
  ``k`` reverse passes, vectorised over the block.)

* ``"ntk_vector_products"`` (``Θ v = J1 (J2ᵀ v)``). Only the column blocks' Jacobians are built
  (``N2`` rows); every row ``J(x2_j)ᵀ e_c`` is pushed through the row block by a Jacobian-vector
  product, whose tangent part costs about ``2 F`` per input::

      flops  ≈ 3 F k N2 + 2 F k B b²         values moved ≈ k P (N2 + B b)
      memory ≈ b k P + b² k A + b² kk

The estimated time is ``flops + β · bytes`` with ``β = 16`` FLOPs per byte, a typical machine
balance of CPUs and of GPUs in float32 (building and streaming Jacobians is memory-bound).
``"auto"`` takes the method with the smaller estimate. For a dense network (``F ≈ 2 P``) with
averaged outputs, the FLOPs favour contraction by about 2×, while the Jacobian traffic favours
NTK-vector products once many blocks are needed (large ``N·P``); with all ``k × k`` output
pairs kept and ``k > 2`` NTK-vector products win; networks whose forward pass costs much more
than ``2 P`` (weight sharing, convolutions) favour contraction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ntk_sklearn.empirical._utils import StaticFn

#: Bytes a block's working set may use when ``batch_size`` is not given.
MEMORY_BUDGET = 2**30
#: Largest default block: bigger blocks do not make the contractions faster.
MAX_BATCH = 256
#: FLOPs per byte moved: converts memory traffic into the time unit of the estimates.
MACHINE_BALANCE = 16.0

METHODS = ("jacobian", "ntk_vector_products")


#: ``forward_stats`` results per (function, parameter and input shapes); cleared when full.
_STATS_CACHE: dict = {}


def forward_stats(apply_fn: Callable, params: Any, x_one: jax.Array, n_params: int):
    """``(F, A)``: FLOPs and intermediate values of one forward pass on one input (cached)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    key = (
        StaticFn(apply_fn),
        treedef,
        tuple((np.shape(leaf), str(getattr(leaf, "dtype", type(leaf)))) for leaf in leaves),
        x_one.shape,
        str(x_one.dtype),
    )
    if key not in _STATS_CACHE:
        if len(_STATS_CACHE) >= 256:
            _STATS_CACHE.clear()
        _STATS_CACHE[key] = _forward_stats(apply_fn, params, x_one, n_params)
    return _STATS_CACHE[key]


def _forward_stats(apply_fn: Callable, params: Any, x_one: jax.Array, n_params: int):
    flops = None
    try:
        cost = jax.jit(apply_fn).lower(params, x_one).cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0] if cost else {}
        flops = float(cost.get("flops", 0.0)) or None
    except Exception:  # a backend without cost analysis: use the dense estimate
        flops = None
    try:
        activations = _count_intermediates(jax.make_jaxpr(apply_fn)(params, x_one).jaxpr)
    except Exception:  # exotic primitives: fall back to a dense-network guess
        activations = 4.0 * np.sqrt(n_params)
    return (flops if flops is not None else 2.0 * n_params), float(max(activations, 1.0))


def _count_intermediates(jaxpr) -> float:
    """Sizes of all values a jaxpr computes (nested jaxprs included): an upper bound on ``A``."""
    total = 0.0
    for eqn in jaxpr.eqns:
        total += sum(float(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v, "aval"))
        for value in eqn.params.values():
            sub = getattr(value, "jaxpr", value)
            if hasattr(sub, "eqns"):
                total += _count_intermediates(sub)
    return total


def n_block_pairs(n1: int, n2: int, b: int, symmetric: bool) -> tuple[int, int]:
    """``(B, diagonal pairs)`` of the blocked loop."""
    c1, c2 = -(-n1 // min(b, n1)), -(-n2 // min(b, n2))
    if symmetric:
        return c1 * (c1 + 1) // 2, c1
    return c1 * c2, 0


def estimated_time(
    method: str,
    *,
    n1: int,
    n2: int,
    k: int,
    n_params: int,
    flops: float,
    outputs: str,
    b: int,
    symmetric: bool,
    itemsize: int,
) -> float:
    """``flops + β · bytes`` of one method (FLOP-equivalents); see the module docstring."""
    kk = k * k if outputs == "full" else k
    pairs, diagonal = n_block_pairs(n1, n2, b, symmetric)
    b1, b2 = min(b, n1), min(b, n2)
    if method == "jacobian":
        rows = n2 + (pairs - diagonal) * b1  # diagonal pairs of x2=None reuse the block
        ops = 3.0 * flops * k * rows + 2.0 * n_params * kk * pairs * b1 * b2
        moved = k * n_params * (rows + pairs * (b1 + b2))
    else:
        ops = 3.0 * flops * k * n2 + 2.0 * flops * k * pairs * b1 * b2
        moved = k * n_params * (n2 + pairs * b2)
    return ops + MACHINE_BALANCE * itemsize * moved


def block_bytes(
    method: str, b: int, k: int, n_params: int, activations: float, outputs: str, itemsize: int
) -> float:
    """Memory estimate of one block pair's working set; see the module docstring."""
    kk = k * k if outputs == "full" else k
    if method == "jacobian":
        values = 2.0 * b * k * n_params + b * (k + 1) * activations + b * b * kk
    else:
        values = b * k * n_params + b * b * k * activations + b * b * kk
    return values * itemsize


def default_batch_size(
    method: str, n: int, k: int, n_params: int, activations: float, outputs: str, itemsize: int
) -> int:
    """Largest ``b <= min(n, MAX_BATCH)`` (halving) whose block fits in ``MEMORY_BUDGET``."""
    b = min(n, MAX_BATCH)
    while b > 1 and (
        block_bytes(method, b, k, n_params, activations, outputs, itemsize) > MEMORY_BUDGET
    ):
        b = max(1, b // 2)
    return b
