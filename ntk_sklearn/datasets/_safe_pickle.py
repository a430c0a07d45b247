"""Read pickled CIFAR batches without executing anything the file chooses.

A pickle is a program for a small stack machine whose instructions may import and call any
Python object; :class:`pickle.Unpickler` runs it. Here the opcodes are decoded with
:func:`pickletools.genops` and interpreted by a machine that knows only what CIFAR batches
(pickled by Python 2 or 3, protocols 0-5) need: ``None``, booleans, integers, floats, byte and
text strings, tuples, lists, dicts, and numpy integer arrays. It calls no function: the few
names a batch may refer to (numpy's array and dtype reconstructors, ``_codecs.encode``) stand
for fixed recipes, and an array exists only once its shape, element type and raw bytes have
been checked to agree exactly; it is then a view of bytes already read from the file, so
nothing is allocated on the file's say-so.
"""

from __future__ import annotations

import pickletools
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "safe_loads"]

# Names a CIFAR batch may refer to, with numpy 1.x's ``numpy.core`` and numpy 2's
# ``numpy._core`` spellings.
_RECONSTRUCT = "reconstruct"
_FROMBUFFER = "frombuffer"
_SCALAR = "scalar"
_DTYPE = "dtype"
_NDARRAY = "ndarray"
_ENCODE = "encode"
_BYTES = "bytes"
_GLOBALS = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _RECONSTRUCT for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _SCALAR for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _FROMBUFFER for core in ("core", "_core")},
    ("numpy", "dtype"): _DTYPE,
    ("numpy", "ndarray"): _NDARRAY,
    # Python 3 pickles ``bytes`` with protocol 2 as ``_codecs.encode(str, "latin1")``, and
    # empty ``bytes`` as ``bytes()``.
    ("_codecs", "encode"): _ENCODE,
    ("__builtin__", "bytes"): _BYTES,
    ("builtins", "bytes"): _BYTES,
}
# Element types an array of a CIFAR batch may have (pixels are uint8, labels integers).
_DTYPE_CODES = frozenset({"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"})
_BYTE_ORDERS = frozenset({"<", ">", "|", "="})
# Largest number of dimensions accepted for an array.
_MAX_NDIM = 4
_MARK = object()


class UnsafePickleError(ValueError):
    """A pickle uses something a CIFAR batch does not need, or is malformed."""


class _Global:
    """A name the pickle referred to (only names of ``_GLOBALS`` are ever created)."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


class _DtypeStub:
    """``numpy.dtype(code)`` waiting for its BUILD state (the byte order)."""

    __slots__ = ("code", "dtype")

    def __init__(self, code: str) -> None:
        self.code = code
        self.dtype: np.dtype | None = None


class _ArrayStub:
    """``numpy.ndarray`` made by ``_reconstruct``, waiting for its BUILD state."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None


def _text(value: Any, what: str) -> str:
    """An ASCII text argument, pickled as ``str`` (Python 3) or ``bytes`` (Python 2)."""
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            pass
    elif isinstance(value, str):
        return value
    raise UnsafePickleError(f"{what} must be a short ASCII string, got {type(value).__name__}.")


def _dtype(value: Any) -> np.dtype:
    if isinstance(value, _DtypeStub) and value.dtype is not None:
        return value.dtype
    raise UnsafePickleError("an array's element type is not a complete numpy dtype.")


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > _MAX_NDIM:
        raise UnsafePickleError(f"an array shape must be a tuple of at most {_MAX_NDIM} sizes.")
    for size in value:
        if type(size) is not int or size < 0:
            raise UnsafePickleError(f"array shape {value!r} holds a size that is not an int >= 0.")
    return value


def _array(raw: Any, dtype: Any, shape: Any, fortran: Any) -> np.ndarray:
    """A read-only view of ``raw`` as an array, once its byte count matches exactly."""
    dtype = _dtype(dtype)
    shape = _shape(shape)
    if isinstance(raw, bytearray):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise UnsafePickleError(
            f"array data must be raw bytes, got {type(raw).__name__} (object arrays are refused)."
        )
    count = 1
    for size in shape:  # Python integers: no overflow
        count *= size
    if count * dtype.itemsize != len(raw):
        raise UnsafePickleError(
            f"an array of shape {shape} and type {dtype} needs {count * dtype.itemsize} bytes, "
            f"but the file holds {len(raw)}."
        )
    order = "F" if fortran else "C"
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order)


def _reduce(func: Any, args: Any) -> Any:
    """The value of ``func(*args)`` for the few recipes a CIFAR batch uses."""
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        raise UnsafePickleError("REDUCE applies something other than an allowed name.")
    kind = func.kind
    if kind == _ENCODE and len(args) == 2 and isinstance(args[0], str):
        if _text(args[1], "the encoding") not in ("latin1", "latin-1"):
            raise UnsafePickleError("_codecs.encode is allowed only with the latin1 encoding.")
        return args[0].encode("latin-1")
    if kind == _BYTES and not args:
        return b""
    if kind == _DTYPE and len(args) == 3:
        code = _text(args[0], "a dtype code")
        if code not in _DTYPE_CODES:
            raise UnsafePickleError(
                f"numpy dtype {code!r} is refused; a CIFAR batch holds integer arrays only."
            )
        return _DtypeStub(code)
    if kind == _RECONSTRUCT and len(args) == 3:
        cls, base, typecode = args
        if (
            isinstance(cls, _Global)
            and cls.kind == _NDARRAY
            and base == (0,)
            and _text(typecode, "the typecode") == "b"
        ):
            return _ArrayStub()
        raise UnsafePickleError("numpy's _reconstruct is allowed only for a plain ndarray.")
    if kind == _FROMBUFFER and len(args) == 4:
        raw, dtype, shape, order = args
        return _array(raw, dtype, shape, _text(order, "the array order") == "F")
    if kind == _SCALAR and len(args) == 2:
        # Numpy integer scalars, e.g. labels pickled as a list of numpy integers.
        return _array(args[1], args[0], (), False)[()]
    raise UnsafePickleError(f"a call to {kind} with these arguments is not allowed.")


def _build(obj: Any, state: Any) -> None:
    """Complete a dtype (byte order) or an array (shape, dtype, raw bytes) from its state."""
    if isinstance(obj, _DtypeStub) and obj.dtype is None and isinstance(state, tuple):
        # numpy's dtype state: (version, byte order, subarray, names, fields, elsize,
        # alignment, flags[, metadata]); a plain scalar type has no subarray or fields.
        if len(state) in (8, 9) and all(item is None for item in (*state[2:5], *state[8:])):
            order = _text(state[1], "a byte order")
            if order in _BYTE_ORDERS:
                obj.dtype = np.dtype(order + obj.code)
                return
        raise UnsafePickleError("a numpy dtype has a structured or unknown state.")
    if isinstance(obj, _ArrayStub) and obj.array is None and isinstance(state, tuple):
        # ndarray state: (version, shape, dtype, is_fortran, raw bytes).
        if len(state) == 5 and state[0] == 1:
            obj.array = _array(state[4], state[2], state[1], state[3])
            return
        raise UnsafePickleError("an ndarray has an unknown state.")
    raise UnsafePickleError("BUILD applies to something other than a numpy dtype or array.")


def _value(obj: Any) -> Any:
    """Replace a finished array or dtype stub by the array; refuse unfinished ones."""
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise UnsafePickleError("an ndarray was created without its data.")
        return obj.array
    if isinstance(obj, _Global | _DtypeStub):
        raise UnsafePickleError("the pickle holds a bare reference to a class or dtype.")
    return obj


_PUSH_ARGUMENT = frozenset(
    "INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT BINBYTES SHORT_BINBYTES "
    "BINBYTES8 UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8".split()
)
# Python 2 ``str``: decoded by pickletools as latin-1 text, read back as the bytes they were.
_PY2_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING"})
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


def safe_loads(raw: bytes, *, max_opcodes: int | None = None) -> Any:
    """Interpret a pickle that may hold only plain data and numpy integer arrays.

    Parameters
    ----------
    raw : bytes
        The pickle.
    max_opcodes : int, default=None
        Refuse a pickle of more opcodes than this: each creates at most one object of a few
        dozen bytes, so this bounds the memory the objects take (None: no bound).

    Returns
    -------
    value : object
        What the pickle holds, Python 2 strings as ``bytes``; arrays are read-only views of
        ``raw``'s bytes.

    Raises
    ------
    UnsafePickleError
        If the pickle imports or calls anything else, builds any other object, or is
        malformed or truncated.

    Examples
    --------
    >>> import pickle
    >>> import numpy as np
    >>> safe_loads(pickle.dumps({"labels": [3, 1], "data": np.zeros((1, 2), np.uint8)}))
    {'labels': [3, 1], 'data': array([[0, 0]], dtype=uint8)}
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def since_mark(*, finished: bool = True) -> list[Any]:
        """Pop the items above the last MARK; ``finished``: arrays must be complete."""
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return [_value(item) for item in items] if finished else items
        raise UnsafePickleError("an opcode needs a MARK that is not on the stack.")

    def pop() -> Any:
        if not stack or stack[-1] is _MARK:
            raise UnsafePickleError("an opcode needs a value but the stack is empty.")
        return stack.pop()

    def top(kind: type, what: str) -> Any:
        if not stack or stack[-1] is _MARK or not isinstance(stack[-1], kind):
            raise UnsafePickleError(f"an opcode needs a {what} on the stack.")
        return stack[-1]

    def set_items(target: dict[Any, Any], items: list[Any]) -> None:
        if len(items) % 2:
            raise UnsafePickleError("a dict needs pairs of keys and values.")
        for key, value in zip(items[::2], items[1::2], strict=True):
            if type(key) not in (str, bytes, int):
                raise UnsafePickleError(f"a dict key of type {type(key).__name__} is refused.")
            target[key] = value

    try:
        for count, (opcode, arg, position) in enumerate(pickletools.genops(raw)):
            if max_opcodes is not None and count >= max_opcodes:
                raise UnsafePickleError(
                    f"more than {max_opcodes} opcodes, too many for a file of {len(raw)} bytes."
                )
            name = opcode.name
            if name in _PUSH_ARGUMENT:
                stack.append(arg)
            elif name in _PY2_STRINGS:
                stack.append(arg.encode("latin-1"))
            elif name in _CONSTANTS:
                stack.append(_CONSTANTS[name])
            elif name == "BYTEARRAY8":
                stack.append(bytes(arg))
            elif name in ("PROTO", "FRAME"):
                continue
            elif name == "MARK":
                stack.append(_MARK)
            elif name == "STOP":
                result = pop()
                if stack:
                    raise UnsafePickleError("values are left on the stack at STOP.")
                if position + 1 != len(raw):
                    raise UnsafePickleError(
                        f"{len(raw) - position - 1} bytes of trailing data after the pickle."
                    )
                return _value(result)
            elif name == "POP":
                if not stack:
                    raise UnsafePickleError("POP on an empty stack.")
                stack.pop()  # a value, or a MARK with nothing above it
            elif name == "POP_MARK":
                since_mark()
            elif name == "DUP":
                stack.append(top(object, "value"))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = top(object, "value")
            elif name == "MEMOIZE":
                memo[len(memo)] = top(object, "value")
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if arg not in memo:
                    raise UnsafePickleError(f"memo entry {arg} is read before it is written.")
                stack.append(memo[arg])
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = [pop() for _ in range(n)][::-1]
                stack.append(tuple(items))
            elif name == "TUPLE":
                # Tuples carry the arguments of REDUCE and BUILD, which may be unfinished.
                stack.append(tuple(since_mark(finished=False)))
            elif name == "LIST":
                stack.append(since_mark())
            elif name == "DICT":
                target: dict[Any, Any] = {}
                set_items(target, since_mark())
                stack.append(target)
            elif name == "APPEND":
                value = _value(pop())
                top(list, "list").append(value)
            elif name == "APPENDS":
                items = since_mark()
                top(list, "list").extend(items)
            elif name == "SETITEM":
                value = _value(pop())
                key = pop()
                set_items(top(dict, "dict"), [key, value])
            elif name == "SETITEMS":
                items = since_mark()
                set_items(top(dict, "dict"), items)
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "GLOBAL":
                    module, _, attr = arg.partition(" ")
                else:
                    attr, module = pop(), pop()
                    if not (isinstance(module, str) and isinstance(attr, str)):
                        raise UnsafePickleError("STACK_GLOBAL needs two strings.")
                kind = _GLOBALS.get((module, attr))
                if kind is None:
                    raise UnsafePickleError(
                        f"the pickle refers to {module}.{attr}, which a CIFAR batch never needs."
                    )
                stack.append(_Global(kind))
            elif name == "REDUCE":
                args = pop()
                stack.append(_reduce(pop(), args))
            elif name == "BUILD":
                state = pop()
                _build(top(object, "value"), state)
            else:
                raise UnsafePickleError(
                    f"pickle opcode {name} is refused: a CIFAR batch holds only plain data "
                    "and numpy arrays."
                )
    except UnsafePickleError:
        raise
    except (ValueError, TypeError, OverflowError, UnicodeError, MemoryError) as exc:
        # pickletools raises ValueError on truncated or malformed opcodes and arguments.
        raise UnsafePickleError(f"malformed or truncated pickle ({exc}).") from exc
    raise UnsafePickleError("the pickle ends without a STOP opcode.")
