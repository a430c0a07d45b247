"""The kernel state that layers transform: a pytree of covariance arrays (pure JAX).

A layer of a stack is a function ``state -> state`` (neural-tangents' ``kernel_fn(k) -> k``).
For a block of ``n1`` rows against ``n2`` rows (``pairs=False``) the state holds

* ``nngp``: ``Σ(x1, x2)`` of shape ``(n1, n2, *S)``, and ``ntk``: ``Θ(x1, x2)`` alike (or None);
* ``cov1``, ``cov2``: each row with itself, ``Σ(x, x)`` of shape ``(n, *S)``, which activations
  need for the variances of the pre-activations;

where ``S`` is ``()`` for vectors (``layout="fc"``), ``P`` for same-pixel covariances
(``"diag"``), ``(*P, *P)`` for all pixel pairs (``"full"``) and ``(*(2r+1), *P)`` for the pairs
within ``r`` pixels of each other (``"band"``; see ``_spatial``), with ``P`` the ``spatial``
sizes of the inputs (``(L,)`` for sequences, ``(H, W)`` for images, ``(D, H, W)`` for volumes).
A stack's plan names a band layout with its radius, ``("band", rh, rw)`` for images. For the
diagonal of a kernel (``pairs=True``), ``nngp``/``ntk`` are the kernels of each row with
itself, ``(n, *S)``, and ``cov1 = cov2 = None``.

``ntk_zero`` (static) says that ``ntk`` is the inputs' NTK, exactly 0: a weight layer then sets
``Θ' = Σ'`` without transforming the zeros. :meth:`KernelState.replace` with a new ``ntk``
clears it, so a layer that changes the NTK cannot leave it set by mistake.

``rounding`` (static) bounds the relative rounding error of the correlations
``ρ = Σ(x1, x2)/sqrt(Σ(x1, x1) Σ(x2, x2))`` in units of machine epsilon: activations snap ``ρ``
within that distance of ±1 to exactly ±1, so that identical and antipodal inputs get exactly
their values instead of rounding amplified by ``arccos`` layer after layer.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ntk_sklearn.kernels._spatial import band_masked, band_radius, band_shift, pixel_diagonal


@dataclasses.dataclass(frozen=True)
class KernelState:
    """Covariances of a block of row pairs after some layers (see the module docstring)."""

    nngp: jax.Array
    ntk: jax.Array | None
    cov1: jax.Array | None
    cov2: jax.Array | None
    layout: str = dataclasses.field(default="fc", metadata={"static": True})
    pairs: bool = dataclasses.field(default=False, metadata={"static": True})
    rounding: float = dataclasses.field(default=8.0, metadata={"static": True})
    ntk_zero: bool = dataclasses.field(default=False, metadata={"static": True})
    spatial: int = dataclasses.field(default=0, metadata={"static": True})

    def replace(self, **changes) -> KernelState:
        """A copy with ``changes``; a new ``ntk`` is not known to be zero unless said so."""
        if "ntk" in changes and changes["ntk"] is not self.ntk:
            changes.setdefault("ntk_zero", False)
        return dataclasses.replace(self, **changes)

    def map_linear(self, fn) -> KernelState:
        """Apply a linear map ``fn`` to every covariance."""
        return self.replace(
            nngp=fn(self.nngp),
            ntk=None if self.ntk is None else fn(self.ntk),
            cov1=None if self.cov1 is None else fn(self.cov1),
            cov2=None if self.cov2 is None else fn(self.cov2),
        )

    def pack(self) -> KernelState:
        """NNGP and NTK as the real and imaginary parts of one array (``ntk=None``).

        For the carry of a loop over layers: XLA's CPU backend does not fuse sibling loops, so
        a layer whose two outputs are separate arrays runs as two loops that each recompute the
        shared work (the convolution's sums, the correlation and its angle); with one complex
        output it is one loop (the 5-layer CNN: 1.5x the pairs/s, ``benchmarks/bench_conv.py``).
        """
        if self.ntk is None or jnp.iscomplexobj(self.nngp):
            return self
        return self.replace(nngp=jax.lax.complex(self.nngp, self.ntk), ntk=None)

    def unpack(self) -> KernelState:
        """The inverse of :meth:`pack`."""
        if not jnp.iscomplexobj(self.nngp):
            return self
        return self.replace(nngp=jnp.real(self.nngp), ntk=jnp.imag(self.nngp))

    def masked(self) -> KernelState:
        """A band-layout state with the entries whose second pixel is off the image zeroed."""
        if self.layout != "band":
            return self
        return self.map_linear(lambda a: band_masked(a, self.spatial))


jax.tree_util.register_dataclass(
    KernelState,
    data_fields=["nngp", "ntk", "cov1", "cov2"],
    meta_fields=["layout", "pairs", "rounding", "ntk_zero", "spatial"],
)


def is_band(layout) -> bool:
    """Whether ``layout`` is the band layout (``"band"`` or a plan's ``("band", rh, rw)``)."""
    return layout == "band" or (isinstance(layout, tuple) and layout[0] == "band")


def pixel_variances(self_cov: jax.Array, layout, d: int) -> jax.Array:
    """Variances ``Σ(x, x)[p, p]`` per row (and pixel) from a row-with-itself covariance with
    ``d`` spatial axes."""
    if layout == "full":
        return pixel_diagonal(self_cov, d)
    if is_band(layout):
        return self_cov[(Ellipsis, *band_radius(self_cov, d), *(slice(None),) * d)]
    return self_cov


def grid_variances(q1: jax.Array, q2: jax.Array, layout, radius=None):
    """Broadcast per-row variances ``(n1, *P)``, ``(n2, *P)`` against ``(n1, n2, *S)``.

    For a band of ``radius``, the second image's variance is read at the pair's second pixel
    (1 off the image, where the covariance is 0).
    """
    d = q1.ndim - 1
    if layout == "full":
        return q1[(slice(None), None, Ellipsis, *(None,) * d)], q2[
            (None, slice(None), *(None,) * d)
        ]
    if is_band(layout):
        return q1[(slice(None), None, *(None,) * d)], band_shift(q2, radius, 1.0)[None, :]
    return q1[:, None], q2[None, :]


def self_variances(q: jax.Array, layout, radius=None) -> tuple[jax.Array, jax.Array]:
    """Broadcast per-row variances ``(n, *P)`` against a row-with-itself ``(n, *S)``."""
    d = q.ndim - 1
    if layout == "full":
        return q[(Ellipsis, *(None,) * d)], q[(slice(None), *(None,) * d)]
    if is_band(layout):
        return q[(slice(None), *(None,) * d)], band_shift(q, radius, 1.0)
    return q, q


#: Einsum letters of the spatial axes of a row and of its partner (up to 3 of each).
_SPATIAL_LETTERS, _PARTNER_LETTERS = "hwd", "abe"
#: Most input channels whose per-pixel products are summed elementwise rather than by a dot.
_ELEMENTWISE_CHANNELS = 8


def input_state(x1: jax.Array, x2: jax.Array | None, layout, want_ntk: bool) -> KernelState:
    """The inputs' covariance ``Σ⁰ = x·x' / fan_in`` (per pixel, over channels, for images).

    ``x2=None`` gives the diagonal (``pairs=True``). The NTK of the inputs is 0.
    """
    hp = jax.lax.Precision.HIGHEST
    fan_in = x1.shape[-1]
    scale = 1.0 / fan_in
    self1 = _self_products(x1, layout) * scale
    # Dot products of fan_in terms carry ~sqrt(fan_in) eps of relative rounding.
    rounding = 8.0 + 4.0 * fan_in**0.5
    state_layout = "band" if is_band(layout) else layout
    d = x1.ndim - 2
    if x2 is None:
        zeros = jnp.zeros_like(self1) if want_ntk else None
        return KernelState(self1, zeros, None, None, state_layout, True, rounding, want_ntk, d)
    pixels = _SPATIAL_LETTERS[:d]
    if layout == "fc":
        grid = jnp.matmul(x1, x2.T, precision=hp)
    elif layout == "diag" and fan_in <= _ELEMENTWISE_CHANNELS:
        # Σ_c x1[i, p, c] x2[j, p, c] as products of broadcasts, which XLA fuses into the first
        # layer's loop in the (i, j, h, w) order; a dot would batch over pixels and leave
        # (h, w, i, j) to transpose (12 % of the 5-layer CNN's time on 3-channel images).
        grid = sum(x1[:, None, ..., c] * x2[None, :, ..., c] for c in range(fan_in))
    elif layout == "diag":
        grid = jnp.einsum(f"i{pixels}c,j{pixels}c->ij{pixels}", x1, x2, precision=hp)
    elif is_band(layout):
        grid = _band_products(x1, x2, layout[1:], pairs=False)
    else:
        second = _PARTNER_LETTERS[:d]
        grid = jnp.einsum(f"i{pixels}c,j{second}c->ij{pixels}{second}", x1, x2, precision=hp)
    grid = grid * scale
    self2 = _self_products(x2, layout) * scale
    zeros = jnp.zeros_like(grid) if want_ntk else None
    return KernelState(grid, zeros, self1, self2, state_layout, False, rounding, want_ntk, d)


def _self_products(x: jax.Array, layout) -> jax.Array:
    """``Σ_c x[p, c] x[p', c]`` of each row with itself, in ``layout`` (see the module doc)."""
    if layout in ("fc", "diag"):
        return jnp.sum(x * x, axis=-1)
    if is_band(layout):
        return _band_products(x, x, layout[1:])
    d = x.ndim - 2
    pixels, second = _SPATIAL_LETTERS[:d], _PARTNER_LETTERS[:d]
    return jnp.einsum(
        f"i{pixels}c,i{second}c->i{pixels}{second}", x, x, precision=jax.lax.Precision.HIGHEST
    )


def _band_products(x1: jax.Array, x2: jax.Array, radius, pairs: bool = True) -> jax.Array:
    """``Σ_c x1[p, c] x2[p + δ, c]`` in band layout: ``(n, ...)`` per row (``pairs``, x1 = x2
    row by row) or ``(n1, n2, ...)`` for every row pair."""
    hp = jax.lax.Precision.HIGHEST
    shifted = band_shift(jnp.moveaxis(x2, -1, 1), radius, 0.0)  # (n2, C, *B, *P)
    d = len(radius)
    pixels, offsets = _SPATIAL_LETTERS[:d], _PARTNER_LETTERS[:d]
    if pairs:
        return jnp.einsum(
            f"i{pixels}c,ic{offsets}{pixels}->i{offsets}{pixels}", x1, shifted, precision=hp
        )
    return jnp.einsum(
        f"i{pixels}c,jc{offsets}{pixels}->ij{offsets}{pixels}", x1, shifted, precision=hp
    )
