"""New layers against neural-tangents 0.6.5: residual blocks, concatenation, LayerNorm, the
standard parameterization, 1-D convolutions and attention (``nt_layers_public.npz``).

The file's layer specs are translated to our layers by :func:`build` (the spec format: the
``nt_layers_public.npz`` section of ``../shared/reference/README.md``).
"""

import jax
import numpy as np
import pytest
from conftest import load_reference, reference_path

from ntk_sklearn.kernels import (
    Activation,
    AvgPool,
    Conv,
    Dense,
    FanInConcat,
    FanInSum,
    FanOut,
    Flatten,
    GlobalAvgPool,
    GlobalSelfAttention,
    Identity,
    LayerNorm,
    Serial,
    parallel,
    serial,
)

LAYERS_REFERENCE = ("nt_layers_public.npz", "nt_layers_public.npz")


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def layers_reference():
    return load_reference(reference_path(*LAYERS_REFERENCE)[0])


def build_layers(specs) -> list:
    """Our layers for a list of the reference file's layer specs."""
    out = []
    for kind, *args in specs:
        if kind == "dense":
            width, w_std, b_std, param = args
            out.append(Dense(w_std, b_std, parameterization=param, width=width))
        elif kind == "conv":
            width, filt, strides, padding, w_std, b_std, param = args
            out.append(Conv(tuple(filt), tuple(strides), padding, w_std, b_std, param, width=width))
        elif kind == "act":
            out.append(Activation(args[0]))
        elif kind == "avgpool":
            out.append(AvgPool(tuple(args[0]), tuple(args[1]), args[2]))
        elif kind == "gap":
            out.append(GlobalAvgPool())
        elif kind == "flatten":
            out.append(Flatten())
        elif kind == "layernorm":
            out.append(LayerNorm(axis=tuple(args[0])))
        elif kind == "fanout":
            out.append(FanOut(args[0]))
        elif kind == "parallel":
            out.append(parallel(*(serial(*build_layers(b)) if b else Identity() for b in args)))
        elif kind == "faninsum":
            out.append(FanInSum())
        elif kind == "faninconcat":
            out.append(FanInConcat())
        elif kind == "attn":
            n_heads, w_key, w_value, w_query, w_out, b_std = args
            out.append(
                GlobalSelfAttention(n_heads, w_key, w_value, w_query, w_out, b_std, width=64)
            )
        else:  # pragma: no cover - a new spec kind
            raise ValueError(f"unknown layer spec {kind!r}")
    return out


def build(specs) -> Serial:
    return serial(*build_layers(specs))


def test_all_reference_cases_are_read(layers_reference):
    _, meta = layers_reference
    assert [case["index"] for case in meta] == list(range(9))


@pytest.mark.parametrize("index", range(9))
def test_reference_layer_stacks(layers_reference, index):
    """Each case, NNGP and NTK, x1 x x2 and x1 x x1: 1e-10 of the largest entry, 1e-7 at the
    correlation ±1 pairs; diag() equals the full kernel's diagonal."""
    data, meta = layers_reference
    for case in [c for c in meta if c["index"] == index]:
        x1, x2 = data[f"{case['input']}_x1"], data[f"{case['input']}_x2"]
        n1, n2 = len(x1), len(x2)
        aligned = {"12": np.zeros((n1, n2), bool), "11": np.eye(n1, dtype=bool)}
        aligned["12"][0, 0] = aligned["12"][1, 1] = True  # x2[0] == x1[0], x2[1] == -x1[1]
        stack = build(case["layers"])
        got = {"12": stack(x1, x2), "11": stack(x1)}
        for name in ("nngp", "ntk"):
            for pair, k in got.items():
                ref = data[f"k{case['index']}_{name}_{pair}"]
                err = np.abs(getattr(k, name) - ref) / np.abs(ref).max()
                assert err[~aligned[pair]].max() < 1e-10, (case["index"], name, pair, err.max())
                assert err[aligned[pair]].max() < 1e-7, (case["index"], name, pair)
        diag = stack.diag(x1)
        np.testing.assert_allclose(diag.ntk, np.diag(got["11"].ntk), rtol=1e-12)
        np.testing.assert_allclose(diag.nngp, np.diag(got["11"].nngp), rtol=1e-12)
