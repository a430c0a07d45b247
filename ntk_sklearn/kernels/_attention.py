"""``GlobalSelfAttention`` with linear scaling of the logits (Hron et al. 2020), infinite width.

With the key and query weights tied and the logits scaled by ``1/(C·d_key)`` (neural-tangents'
``linear_scaling=True``), the logits of position ``p`` against ``p'`` converge to the
deterministic ``w_q w_k · Σ(x, x)[p, p']``, so the attention weights are

    G(x)[p, p'] = softmax_{p'}(w_query_std · w_key_std · Σ(x, x)[p, p'])

and the output ``W_out · (G(x) V(x)) + b`` has (neural-tangents' kernel, ``s = w_out·w_value``)

    Σ'(x, x')  = s² · G(x) Σ(x, x') G(x')ᵀ + b²,
    Θ'(x, x')  = s² · G(x) (Θ(x, x') + 2 Σ(x, x')) G(x')ᵀ + b²

over all pairs of positions (the ``2 Σ``: the gradients of the value and output weights; the
tied keys' vanish at infinite width). Inputs are sequences, images or volumes (all positions
attend to all).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn.kernels._layers import Layer, Shape, Signal, _hyper, _layer
from ntk_sklearn.kernels._state import KernelState

_HP = jax.lax.Precision.HIGHEST


@_layer("w_key_std", "w_value_std", "w_query_std", "w_out_std", "b_std")
class GlobalSelfAttention(Layer):
    """Softmax self-attention over all positions, with linearly scaled logits.

    Parameters
    ----------
    n_heads : int, default=1
        Heads of the finite network. The infinite-width kernel does not depend on it (the limit
        takes the key, value and head widths to infinity together); kept for neural-tangents'
        signature and as documentation of the network.
    w_key_std, w_value_std, w_query_std, w_out_std : float, default=1.0
        Weight standard deviations; the kernel depends on ``w_query_std · w_key_std`` (the
        logits' scale) and ``w_out_std · w_value_std`` (as neural-tangents' kernel does).
    b_std : float, default=0.0
        Output bias standard deviation.
    width : int, default=None
        Output channels of the finite network (read by a following standard layer or
        ``FanInConcat``).

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import (Conv, Dense, GlobalAvgPool, GlobalSelfAttention, Relu,
    ...                                  serial)
    >>> stack = serial(Conv((1,)), GlobalSelfAttention(n_heads=4), Relu(), GlobalAvgPool(),
    ...                Dense())
    >>> sequences = np.random.default_rng(0).normal(size=(3, 16, 8))  # (n, length, channels)
    >>> stack(sequences).ntk.shape
    (3, 3)
    """

    n_heads: int = 1
    w_key_std: float = 1.0
    w_value_std: float = 1.0
    w_query_std: float = 1.0
    w_out_std: float = 1.0
    b_std: float = 0.0
    width: int | None = None

    def __post_init__(self) -> None:
        for name in ("n_heads", "width"):
            value = getattr(self, name)
            if value is None and name == "width":
                continue
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
            object.__setattr__(self, name, int(value))
        for name in ("w_key_std", "w_value_std", "w_query_std", "w_out_std", "b_std"):
            _hyper(self, name)

    def output_shape(self, shape: Shape) -> Shape:
        if shape is None:
            raise ValueError(
                f"{self!r} attends over positions, but receives vectors: give it sequences "
                "(n, length, channels), images or volumes, before Flatten/GlobalAvgPool."
            )
        return shape

    def signal(self, signal: Signal) -> Signal:
        return signal.weighted(self.output_shape(signal.shape), self.width)

    def input_radius(self, radius):
        return None  # every position attends to every other: all pairs

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True  # equivariant to any permutation of the positions

    def apply(self, state: KernelState) -> KernelState:
        d = state.spatial
        sizes = state.nngp.shape[state.nngp.ndim - d :]
        size = math.prod(sizes)
        scale = self.w_query_std * self.w_key_std
        s2, b2 = (self.w_out_std * self.w_value_std) ** 2, self.b_std**2

        def flat(a, batch: int):
            return a.reshape(*a.shape[:batch], size, size)

        def unflat(a, batch: int):
            return a.reshape(*a.shape[:batch], *sizes, *sizes)

        def weights(cov):
            return jax.nn.softmax(scale * flat(cov, 1), axis=-1)  # (n, P, P)

        def mix_self(g, a):
            out = jnp.einsum("ipq,iqr->ipr", g, flat(a, 1), precision=_HP)
            return unflat(jnp.einsum("ipr,isr->ips", out, g, precision=_HP), 1)

        def mix_grid(g1, a, g2):
            out = jnp.einsum("ijqr,jsr->ijqs", flat(a, 2), g2, precision=_HP)
            return unflat(jnp.einsum("ipq,ijqs->ijps", g1, out, precision=_HP), 2)

        rounding = state.rounding + 8.0 + 4.0 * size**0.5
        if state.pairs:
            g = weights(state.nngp)
            mixed = mix_self(g, state.nngp)
            ntk = None
            if state.ntk is not None:
                tangent = 2 * state.nngp if state.ntk_zero else state.ntk + 2 * state.nngp
                ntk = s2 * mix_self(g, tangent) + b2
            return state.replace(nngp=s2 * mixed + b2, ntk=ntk, rounding=rounding)
        g1, g2 = weights(state.cov1), weights(state.cov2)
        ntk = None
        if state.ntk is not None:
            tangent = 2 * state.nngp if state.ntk_zero else state.ntk + 2 * state.nngp
            ntk = s2 * mix_grid(g1, tangent, g2) + b2
        return state.replace(
            nngp=s2 * mix_grid(g1, state.nngp, g2) + b2,
            ntk=ntk,
            cov1=s2 * mix_self(g1, state.cov1) + b2,
            cov2=s2 * mix_self(g2, state.cov2) + b2,
            rounding=rounding,
        )
