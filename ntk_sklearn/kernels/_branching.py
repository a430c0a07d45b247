"""Branching layers (neural-tangents' ``FanOut``, ``parallel``, ``FanInSum``, ``FanInConcat``).

Between ``FanOut(n)`` and a fan-in the kernel state is a tuple of ``n`` :class:`KernelState`
(one per branch); ``parallel(*branches)`` maps each through its own stack. A residual block is

    serial(FanOut(2), parallel(serial(Relu(), Conv(...), Relu(), Conv(...)), Identity()),
           FanInSum())

Fan-in of branches ``f_1 .. f_n`` of one input (kernels per pair of positions):

* ``FanInSum``: ``Σ = Σ_i Σ_i``, ``Θ = Σ_i Θ_i``. Exact when the branches are uncorrelated, which
  holds when all of them but at most one end in fresh zero-mean Gaussian weights (a ``Dense``,
  ``Conv`` or attention layer since the ``FanOut``, then only linear maps): the cross terms
  ``mean_c f_i(x)_c f_j(x')_c`` then vanish at infinite width. The planner refuses other sums
  (neural-tangents only warns).
* ``FanInConcat`` (channel axis): the channel average of the concatenation,
  ``Σ = Σ_i (n_i / Σ_j n_j) Σ_i`` with ``n_i`` the branches' widths (equal weights when no
  branch says its width), the same for ``Θ``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn.kernels._layers import Layer, Shape, Signal
from ntk_sklearn.kernels._state import KernelState


@dataclasses.dataclass(frozen=True)
class FanOut(Layer):
    """Copy the input into ``n`` branches (for ``parallel`` and a fan-in).

    Parameters
    ----------
    n : int
        Number of branches (>= 1).

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import Dense, FanInSum, FanOut, Identity, Relu, parallel, serial
    >>> residual = serial(Dense(1.4), FanOut(2), parallel(serial(Relu(), Dense(1.4)), Identity()),
    ...                   FanInSum(), Relu(), Dense())
    >>> residual(np.eye(3), get="ntk").shape
    (3, 3)
    """

    packable: ClassVar[bool] = True

    n: int = 2

    def __post_init__(self) -> None:
        n = self.n
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"FanOut takes a positive number of branches; got {n!r}.")
        object.__setattr__(self, "n", int(n))

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True

    def split(self, signal: Signal) -> tuple[Signal, ...]:
        """The branches' signals: each starts a new level of freshness (no weights yet)."""
        return (signal.replace(fresh=(*signal.fresh, False)),) * self.n

    def apply(self, state: KernelState) -> tuple[KernelState, ...]:
        return (state,) * self.n


class _FanIn(Layer):
    """Base of the fan-in layers: a tuple of branch states to one state."""

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True

    def _common_shape(self, signals: tuple[Signal, ...]) -> Shape:
        shapes = [s.shape for s in signals]
        if any(shape != shapes[0] for shape in shapes):
            raise ValueError(
                f"{self!r} merges branches whose outputs have different spatial shapes "
                f"{shapes}: make the branches keep the same positions (e.g. padding='SAME', the "
                "same strides and pooling in each)."
            )
        return shapes[0]

    @staticmethod
    def _fresh(signals: tuple[Signal, ...]) -> tuple[bool, ...]:
        """Freshness of the merged signal for the enclosing fan-outs: fresh where every branch
        is (a branch that passes the input on unchanged is correlated with its siblings)."""
        outer = [s.fresh[:-1] for s in signals]
        return tuple(all(flags) for flags in zip(*outer, strict=True))


@dataclasses.dataclass(frozen=True)
class FanInSum(_FanIn):
    """Sum of the branches: ``Σ = Σ_i Σ_i``, ``Θ = Σ_i Θ_i`` (uncorrelated branches).

    All branches but at most one must end in fresh Gaussian weights (a ``Dense``, ``Conv`` or
    ``GlobalSelfAttention`` since the ``FanOut``, then only linear maps): the skip connection
    ``Identity()`` is the one. Other sums are refused (they have cross terms).

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import Dense, FanInSum, FanOut, Identity, parallel, serial
    >>> x = np.array([[1.0, 0.0], [0.6, 0.8]])
    >>> skip = serial(Dense(), FanOut(2), parallel(Dense(), Identity()), FanInSum(), Dense())
    >>> bool(np.allclose(skip(x, get="nngp"), 2 * serial(Dense(), Dense())(x, get="nngp")))
    True
    """

    packable: ClassVar[bool] = True

    def merge(self, signals: tuple[Signal, ...]) -> tuple[Signal, None]:
        """The merged signal; a ``ValueError`` for branches that cannot be summed."""
        shape = self._common_shape(signals)
        widths = {s.width for s in signals} - {None}
        if len(widths) > 1:
            raise ValueError(
                f"{self!r} sums branches of different widths {sorted(widths)}: the sum needs "
                "the same channels in every branch."
            )
        shared = [i for i, s in enumerate(signals) if not (s.gaussian and s.fresh[-1])]
        if len(signals) > 1 and len(shared) > 1:
            raise ValueError(
                f"{self!r}: branches {shared} are not independent zero-mean Gaussians (they have "
                "no Dense/Conv/GlobalSelfAttention layer after the FanOut, or an activation "
                "after it), so their sum has cross terms that the infinite-width kernel does "
                "not know. Give all branches but one a weight layer at their end (the skip "
                "connection, Identity(), is the one)."
            )
        width = next(iter(widths)) if widths else None
        merged = Signal(shape, width, all(s.gaussian for s in signals), self._fresh(signals))
        return merged, None

    def apply(self, states: tuple[KernelState, ...], weights=None) -> KernelState:
        return _combine(states, [1.0] * len(states))


@dataclasses.dataclass(frozen=True)
class FanInConcat(_FanIn):
    """Concatenation of the branches along the channel axis: the width-weighted average of
    their kernels (equal weights when no branch says its width; every branch or none must).

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import Dense, Erf, FanInConcat, FanOut, Relu, parallel, serial
    >>> wide = serial(FanOut(2), parallel(serial(Dense(width=96), Relu()),
    ...                                   serial(Dense(width=32), Erf())),
    ...               FanInConcat(), Dense())
    >>> x = np.array([[1.0, 0.0], [0.6, 0.8]])
    >>> relu = serial(Dense(), Relu(), Dense())(x, get="nngp")
    >>> erf = serial(Dense(), Erf(), Dense())(x, get="nngp")
    >>> bool(np.allclose(wide(x, get="nngp"), 0.75 * relu + 0.25 * erf))  # 96 and 32 channels
    True
    """

    packable: ClassVar[bool] = True

    def merge(self, signals: tuple[Signal, ...]) -> tuple[Signal, tuple[float, ...]]:
        """The merged signal and the branches' weights ``n_i / Σ n_j``."""
        shape = self._common_shape(signals)
        widths = [s.width for s in signals]
        if all(w is None for w in widths):
            weights, width = (1.0 / len(signals),) * len(signals), None
        elif any(w is None for w in widths):
            unknown = [i for i, w in enumerate(widths) if w is None]
            raise ValueError(
                f"{self!r} weighs each branch by its channels, but branches {unknown} do not say "
                f"theirs (widths {widths}): give the last Dense/Conv of every branch width=..."
            )
        else:
            width = sum(widths)
            weights = tuple(w / width for w in widths)
        merged = Signal(shape, width, all(s.gaussian for s in signals), self._fresh(signals))
        return merged, weights

    def apply(self, states: tuple[KernelState, ...], weights=None) -> KernelState:
        return _combine(states, weights)


def _combine(states: tuple[KernelState, ...], weights) -> KernelState:
    """``Σ_i w_i state_i`` for every covariance (the states in one layout)."""
    complex_ = [jnp.iscomplexobj(s.nngp) for s in states]
    if any(complex_) and not all(complex_):
        states = tuple(s.unpack() for s in states)  # packed and unpacked branches

    def total(name):
        arrays = [getattr(s, name) for s in states]
        if arrays[0] is None:
            return None
        out = weights[0] * arrays[0] if weights[0] != 1.0 else arrays[0]
        for w, a in zip(weights[1:], arrays[1:], strict=True):
            out = out + (w * a if w != 1.0 else a)
        return out

    return dataclasses.replace(
        states[0],
        nngp=total("nngp"),
        ntk=total("ntk"),
        cov1=total("cov1"),
        cov2=total("cov2"),
        rounding=max(s.rounding for s in states) + 4.0,
        ntk_zero=all(s.ntk_zero for s in states),
    )


@dataclasses.dataclass(frozen=True)
class Parallel(Layer):
    """Apply ``branches[i]`` to branch ``i`` of a ``FanOut`` (see :func:`parallel`)."""

    branches: tuple = ()

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True  # each branch's layers are checked where they act

    def __repr__(self) -> str:
        return f"parallel({', '.join(repr(b) for b in self.branches)})"


jax.tree_util.register_pytree_node(
    Parallel,
    lambda p: (p.branches, None),
    lambda _, branches: Parallel(tuple(branches)),
)
jax.tree_util.register_pytree_node(FanOut, lambda f: ((), f.n), lambda n, _: FanOut(n))
jax.tree_util.register_pytree_node(FanInSum, lambda f: ((), None), lambda *_: FanInSum())
jax.tree_util.register_pytree_node(FanInConcat, lambda f: ((), None), lambda *_: FanInConcat())
