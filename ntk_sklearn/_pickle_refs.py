"""Pickle user-given functions (activations) by a name that resolves to them.

``pickle`` saves a function as a reference ``module.qualname`` and refuses one that is not found
under that name: ``jnp.tanh`` is defined in ``jax._src.numpy.ufuncs`` under another object, so
estimators and kernels holding it did not pickle. :func:`picklable` wraps such a function in a
reference to the public module that exposes it (``jax.numpy.tanh``), which unpickles as the
function itself; a function found nowhere (a lambda, a closure) gets a ``PicklingError`` that
says what to pass instead.
"""

from __future__ import annotations

import functools
import importlib
import io
import pickle
from collections.abc import Callable

#: Public modules searched, in order, for a function that does not pickle under its own name.
_PUBLIC_MODULES = ("jax.numpy", "jax.nn", "jax.scipy.special", "jax.lax", "numpy", "math")


def _resolve(module: str, name: str) -> Callable:
    return getattr(importlib.import_module(module), name)


class _FunctionRef:
    """Pickles as ``_resolve(module, name)``: unpickling gives the function itself."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args, **kwargs):
        return _resolve(self.module, self.name)(*args, **kwargs)

    def __reduce__(self):
        return _resolve, (self.module, self.name)


def picklable(fn, what: str):
    """``fn``, or a reference that pickles as it; ``PicklingError`` naming ``what`` if neither."""
    if not callable(fn) or isinstance(fn, str):
        return fn
    if isinstance(fn, functools.partial):  # its function by reference, its arguments as they are
        return functools.partial(picklable(fn.func, what), *fn.args, **fn.keywords)
    try:
        pickle.dumps(fn)
        return fn
    except (pickle.PicklingError, TypeError, AttributeError):
        pass
    name = getattr(fn, "__name__", None)
    for module in _PUBLIC_MODULES:
        try:
            if name and _resolve(module, name) is fn:
                return _FunctionRef(module, name)
        except (ImportError, AttributeError):
            continue
    raise pickle.PicklingError(
        f"{what}={fn!r} cannot be pickled: pickle stores a function by its module and name, and "
        f"this one is not found under them (a lambda, a closure or a local function?). Pass a "
        "function defined with def at the top level of a module, or a JAX function such as "
        "jnp.tanh or jax.nn.gelu."
    )


class _RefPickler(pickle.Pickler):
    """A pickler that stores unpicklable functions found inside an object as references."""

    def reducer_override(self, obj):
        # Functions only (they have a name); containers such as a callable stack are walked.
        if callable(obj) and hasattr(obj, "__name__") and not isinstance(obj, type):
            ref = picklable(obj, "a function inside layers")
            if ref is not obj:
                return ref.__reduce__()
        return NotImplemented


class _Pickled:
    """Bytes that unpickle as the object they were made from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self):
        return pickle.loads, (self.data,)


def picklable_object(obj):
    """``obj``, or a stand-in that pickles it with its functions (``jnp.tanh``) as references.

    For objects holding functions deep inside (a ``serial(...)`` stack with
    ``Activation(jnp.tanh)``); it unpickles as ``obj`` itself.
    """
    if obj is None:
        return obj
    try:
        pickle.dumps(obj)
        return obj
    except (pickle.PicklingError, TypeError, AttributeError):
        pass
    buffer = io.BytesIO()
    _RefPickler(buffer).dump(obj)
    return _Pickled(buffer.getvalue())
