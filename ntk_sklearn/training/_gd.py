"""Full-batch gradient descent on the mean squared error, recording the trajectory.

Loss (the project's convention):

    L(θ) = 0.5 · mean over all entries of (f(θ, x) − y)²  =  ‖f(θ, x) − y‖² / (2 · y.size)

and the update ``θ ← θ − η ∇L(θ)``. For small ``η`` this is gradient flow in time ``t = steps``:
``dθ/dt = −η Jᵀ (f − y) / y.size``, so the training outputs follow
``df/dt = −(η / y.size) Θ_full (f − y)``. When the NTK stays at its initial value (wide
networks) and is diagonal across output units, ``Θ_full = Θ ⊗ I_k`` (``Θ`` per output unit):

    f_t(x) − y = exp(−η · t · Θ / y.size) (f_0(x) − y).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn._validation import check_scalar
from ntk_sklearn.empirical._utils import (
    StaticFn,
    as_batch,
    check_apply_fn,
    check_params,
    probe_model,
)


class Trajectory(NamedTuple):
    """What :func:`train_gd` recorded, one entry per recorded step.

    Attributes
    ----------
    steps : ndarray of shape (n_records,)
        Gradient-descent steps at which the state was recorded (0 and ``n_steps`` included).
    loss : ndarray of shape (n_records,)
        Training loss ``0.5 · mean((f(x) − y)²)``.
    train_outputs : ndarray of shape (n_records, ...)
        ``f(params_t, x)``.
    test_outputs : ndarray of shape (n_records, n_test, ...) or None
        ``f(params_t, x_test)`` when ``x_test`` was given.
    params : list of pytrees or None
        Parameters at every recorded step, when ``record_params=True``.
    final_params : pytree
        Parameters after ``n_steps`` steps.
    """

    steps: np.ndarray
    loss: np.ndarray
    train_outputs: np.ndarray
    test_outputs: np.ndarray | None
    params: list | None
    final_params: Any


def mse_loss(outputs: jax.Array, y: jax.Array) -> jax.Array:
    """``0.5 · mean((outputs − y)²)`` over all entries."""
    return 0.5 * jnp.mean((outputs - y) ** 2)


@partial(jax.jit, static_argnames=("fn",))
def _descend(fn: StaticFn, params: Any, x, y, learning_rate, n_steps) -> Any:
    """``n_steps`` (traced: one compilation for all counts) updates ``θ ← θ − η ∇L(θ)``."""
    grad = jax.grad(lambda p: mse_loss(fn(p, x), y))

    def step(_, p):
        return jax.tree_util.tree_map(lambda a, g: a - learning_rate * g, p, grad(p))

    return jax.lax.fori_loop(0, n_steps, step, params)


@partial(jax.jit, static_argnames=("fn",))
def _evaluate(fn: StaticFn, params: Any, x, y, x_test):
    out = fn(params, x).reshape(y.shape)
    test = None if x_test is None else fn(params, x_test)
    return mse_loss(out, y), out, test


def _check_targets(y: Any, out_shape: tuple[int, ...], dtype) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.isfinite(y).all()):
        raise ValueError("y must be a finite numeric array.")
    if y.shape != out_shape:
        if y.size != int(np.prod(out_shape)) or y.shape[:1] != out_shape[:1]:
            raise ValueError(
                f"y must have the shape of apply_fn(params, x), {out_shape}; got {y.shape}."
            )
        y = y.reshape(out_shape)  # e.g. (n,) targets for (n, 1) outputs
    return y.astype(dtype)


def _raise_nonfinite(step: int, outputs: np.ndarray, size: int) -> None:
    """A clear error for a NaN/infinite loss: a broken model at step 0, divergence later."""
    if step == 0:
        bad = int(np.argmax(~np.isfinite(outputs.reshape(outputs.shape[0], -1)).all(axis=1)))
        raise ValueError(
            f"apply_fn(params, x) returns NaN or infinity on row {bad} of x: the loss is not "
            "finite before training. Check the model and params on that input."
        )
    raise ValueError(
        f"The loss became NaN or infinite by step {step}: gradient descent diverged. Use a "
        f"smaller learning_rate (stable below 2 · y.size / λ_max(Θ) = {2 * size} / λ_max(Θ), "
        "Θ the NTK of the training inputs)."
    )


def train_gd(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x,
    y,
    *,
    learning_rate: float,
    n_steps: int,
    record_every: int = 1,
    x_test=None,
    record_params: bool = False,
) -> Trajectory:
    r"""Train ``apply_fn`` by full-batch gradient descent on ``0.5 · mean((f(x) − y)²)``.

    Each step is ``θ ← θ − learning_rate · ∇L(θ)`` with ``L = ‖f(θ, x) − y‖² / (2 · y.size)``.
    Under this convention, for a small learning rate and a wide network, the training outputs
    evolve as ``f_t − y = exp(−learning_rate · t · Θ / y.size) (f_0 − y)`` with ``t`` the
    number of steps and ``Θ`` the NTK per output unit (the time convention of the kernel
    regressors' ``t``).

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, x) -> outputs``; any JAX-differentiable function.
    params : pytree
        Initial parameters (not modified).
    x : array-like of shape (n, ...)
        Training inputs.
    y : array-like
        Targets, of the shape of ``apply_fn(params, x)`` (``(n,)`` is accepted for ``(n, 1)``).
    learning_rate : float
        Step size (> 0).
    n_steps : int
        Number of steps (>= 0).
    record_every : int, default=1
        Record the state every this many steps (step 0 and step ``n_steps`` always are).
    x_test : array-like of shape (n_test, ...), default=None
        Inputs whose outputs are recorded too.
    record_params : bool, default=False
        Keep the parameters of every recorded step.

    Returns
    -------
    Trajectory
        Recorded ``steps``, ``loss``, ``train_outputs``, ``test_outputs``, ``params``, and
        ``final_params``.

    Raises
    ------
    ValueError
        For a non-positive or non-finite learning rate, a negative ``n_steps``, a
        ``record_every`` below 1, targets whose shape does not match the outputs, inputs the
        model cannot run on (the message names the shapes), params that are empty or not
        finite, outputs that are not finite at initialisation, or a loss that becomes NaN or
        infinite (divergence: the message says to lower the learning rate).
    TypeError
        For a learning rate that is not a number, or integer parameters.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from ntk_sklearn.empirical import init_mlp
    >>> from ntk_sklearn.training import train_gd
    >>> params, f = init_mlp(jax.random.PRNGKey(0), 1, depth=1, width=64)
    >>> x = np.linspace(-1, 1, 8).reshape(-1, 1)
    >>> traj = train_gd(f, params, x, np.sin(3 * x), learning_rate=1.0, n_steps=100,
    ...                 record_every=50)
    >>> traj.steps.tolist(), bool(traj.loss[-1] < traj.loss[0])
    ([0, 50, 100], True)
    """
    check_apply_fn(apply_fn)
    learning_rate = check_scalar(learning_rate, "learning_rate", low_inclusive=False)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ValueError(f"n_steps must be an integer >= 0; got {n_steps!r}.")
    if (
        isinstance(record_every, bool)
        or not isinstance(record_every, (int, np.integer))
        or record_every < 1
    ):
        raise ValueError(f"record_every must be an integer >= 1; got {record_every!r}.")
    if not isinstance(record_params, (bool, np.bool_)):
        raise TypeError(f"record_params must be True or False; got {record_params!r}.")
    check_params(params)
    x = as_batch(x, "x")
    probe_model(apply_fn, params, x, "x")
    if x_test is not None:
        x_test = as_batch(x_test, "x_test")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"x_test must have the shape of x after the sample axis, {x.shape[1:]}; got "
                f"{x_test.shape[1:]}."
            )
        x_test = jnp.asarray(x_test)
    x = jnp.asarray(x)
    out0 = jax.eval_shape(apply_fn, params, x)
    y = jnp.asarray(_check_targets(y, out0.shape, out0.dtype))
    fn = StaticFn(apply_fn)
    lr = jnp.asarray(learning_rate, out0.dtype)

    steps = list(range(0, n_steps, record_every)) + [int(n_steps)]
    records: dict[str, list] = {"loss": [], "train": [], "test": [], "params": []}
    done = 0
    for step in steps:
        params = _descend(fn, params, x, y, lr, step - done)
        done = step
        loss, out, test = _evaluate(fn, params, x, y, x_test)
        if not np.isfinite(float(loss)):
            _raise_nonfinite(step, np.asarray(out), y.size)
        records["loss"].append(float(loss))
        records["train"].append(np.asarray(out))
        if test is not None:
            records["test"].append(np.asarray(test))
        if record_params:
            records["params"].append(params)
    return Trajectory(
        steps=np.asarray(steps),
        loss=np.asarray(records["loss"]),
        train_outputs=np.stack(records["train"]),
        test_outputs=np.stack(records["test"]) if x_test is not None else None,
        params=records["params"] if record_params else None,
        final_params=params,
    )
