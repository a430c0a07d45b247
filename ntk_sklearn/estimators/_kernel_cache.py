"""Kernel reuse: ``memory=`` (a joblib.Memory or a folder) and kernels handed from CV to refit.

A kernel matrix depends on the kernel's hyperparameters and on the two inputs, not on ``alpha``,
``t``, the targets or the solver. :func:`cached_kernels` looks each requested kernel up by a key
made of exactly those, so that fits and predictions that differ only in the rest (a grid over
``alpha`` and ``t``, a refit on the same rows, a second ``predict``) read the kernel instead of
computing it again. Two stores, looked up in this order:

- kernels handed over in memory by :func:`preloaded` for the duration of a ``with`` block (the
  CV estimators hand the blocks of the kernel of all training rows to their refit);
- the estimator's ``memory``, scikit-learn's ``Pipeline(memory=...)`` convention: ``None`` (no
  caching), a folder, or a :class:`joblib.Memory`; the kernels are pickled there, so a cached
  kernel is bitwise the one computed.

Keys are :func:`joblib.hash` digests (MD5 of the pickled values) of the inputs, the kernel's
hyperparameters (the fitted ones: learned ``w_std``/``b_std``, ``input_scale_``, the seed of
``kernel="empirical"``) and the package version. A hyperparameter that cannot be pickled (a
lambda as ``activation``, a model's ``apply_fn`` defined in a notebook cell may be) cannot be
keyed: then nothing is cached, with a warning.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence

import joblib
import numpy as np
from sklearn.utils.validation import check_memory

#: The parameters of the estimators on which the kernel matrices depend (with the fitted
#: ``kernel_seed_`` and ``input_scale_``); ``block_size`` too, since tiles may round differently.
KERNEL_PARAMS = (
    "architecture",
    "depth",
    "activation",
    "image_shape",
    "filter_size",
    "pooling",
    "flip_invariant",
    "layers",
    "w_std",
    "b_std",
    "negative_slope",
    "dtype",
    "block_size",
    "kernel",
    "width",
    "n_samples",
)

_PRELOADED: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "ntk_sklearn_preloaded_kernels", default=None
)


def kernel_key(estimator) -> str | None:
    """Digest of what the estimator's kernels depend on; ``None`` when it cannot be hashed."""
    from ntk_sklearn import __version__, _warnings

    p = estimator._hyper
    described = {name: p[name] for name in KERNEL_PARAMS}
    described["kernel_seed"] = getattr(estimator, "kernel_seed_", None)
    described["input_scale"] = getattr(estimator, "input_scale_", None)
    described["version"] = __version__
    try:
        return joblib.hash(described)
    except Exception as err:  # noqa: BLE001 - any pickling failure means "cannot be keyed"
        _warnings.warn(
            "Kernels are not cached: a kernel hyperparameter cannot be hashed "
            f"({type(err).__name__}: {err}). Define the activation or model as a module-level "
            "function to cache them.",
            UserWarning,
        )
        return None


def data_key(x: np.ndarray | None) -> str:
    """Digest of an input array (values, shape and dtype); ``"None"`` for ``None``."""
    return "None" if x is None else joblib.hash(np.ascontiguousarray(x))


def _stored_kernel(name: str, key: str, key1: str, key2: str, value=None):
    """The function joblib memoizes: its result is the ``value`` of the first call per key."""
    return value


@contextlib.contextmanager
def preloaded(entries: dict) -> Iterator[None]:
    """Within the block, :func:`cached_kernels` reads these kernels first.

    ``entries`` maps ``(kernel_key, data_key(x1), data_key(x2), name)`` to a kernel matrix.
    """
    token = _PRELOADED.set({**(_PRELOADED.get() or {}), **entries})
    try:
        yield
    finally:
        _PRELOADED.reset(token)


def cached_kernels(
    estimator,
    x1: np.ndarray,
    x2: np.ndarray | None,
    names: Sequence[str],
    compute: Callable[[np.ndarray, np.ndarray | None, tuple[str, ...]], dict],
) -> dict:
    """The kernels ``names`` between ``x1`` and ``x2`` as ``{name: matrix}``.

    Each is read from the preloaded kernels or the estimator's ``memory`` when there; the
    missing ones are computed together by ``compute(x1, x2, missing)`` and stored in
    ``memory``. Without either store, ``compute`` is called directly (nothing is hashed).
    """
    names = tuple(names)
    memory = check_memory(getattr(estimator, "memory", None))
    preload = _PRELOADED.get()
    if memory.location is None and not preload:
        return compute(x1, x2, names)
    key = kernel_key(estimator)
    if key is None:
        return compute(x1, x2, names)
    key1, key2 = data_key(x1), data_key(x2)
    stored = memory.cache(_stored_kernel, ignore=["value"]) if memory.location else None
    found = {}
    for name in names:
        entry = (key, key1, key2, name)
        if preload and entry in preload:
            found[name] = preload[entry]
        elif stored is not None and stored.check_call_in_cache(name, key, key1, key2):
            found[name] = stored(name, key, key1, key2)
    missing = tuple(name for name in names if name not in found)
    if missing:
        computed = compute(x1, x2, missing)
        for name in missing:
            found[name] = computed[name]
            if stored is not None:
                stored(name, key, key1, key2, value=np.asarray(computed[name]))
    return found
