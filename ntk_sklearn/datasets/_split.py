"""Train/test splitting: validation of ``n_train``/``n_test`` and stratified subsets."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

__all__ = ["check_n_samples", "split_indices"]

#: Fraction of the samples held out as test set when a file has no split of its own and
#: neither ``n_train`` nor ``n_test`` is given.
DEFAULT_TEST_FRACTION = 0.2


def check_n_samples(value: int | None, name: str) -> int | None:
    """Check that ``value`` is None or a positive integer; return it as ``int``.

    Parameters
    ----------
    value : int or None
        The requested number of samples.
    name : str
        The parameter name, for the error message.

    Returns
    -------
    value : int or None
        The validated value.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {value}.")
    return int(value)


def _stratified_subset(
    indices: np.ndarray, labels: np.ndarray, n: int, rng: np.random.RandomState
) -> np.ndarray:
    """Return ``n`` of ``indices``, stratified by ``labels``, in shuffled order."""
    if n == indices.size:
        return indices[rng.permutation(indices.size)]
    subset, _ = train_test_split(indices, train_size=n, stratify=labels[indices], random_state=rng)
    return subset


def split_indices(
    labels: np.ndarray,
    is_test: np.ndarray | None,
    *,
    n_train: int | None,
    n_test: int | None,
    random_state: int | np.random.RandomState | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the indices of the train and test samples.

    With a fixed split (``is_test`` given), ``n_train``/``n_test`` select stratified subsets
    of the train and test parts; None keeps the whole part in its original order. Without a
    split, the samples are split stratified into disjoint train and test sets of sizes
    ``n_train`` and ``n_test`` (a missing size takes the rest; if both are None, a fraction
    ``DEFAULT_TEST_FRACTION`` of the samples is the test set).

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Integer class labels.
    is_test : ndarray of shape (n_samples,) of bool, or None
        The file's own split, or None if it has none.
    n_train, n_test : int or None
        Requested sizes; validated here.
    random_state : int, RandomState instance or None
        Seed for the subsets.

    Returns
    -------
    train, test : ndarray of int
        Disjoint indices into ``labels``.
    """
    n_train = check_n_samples(n_train, "n_train")
    n_test = check_n_samples(n_test, "n_test")
    rng = check_random_state(random_state)
    if is_test is not None:
        parts = []
        for name, n, mask in (("n_train", n_train, ~is_test), ("n_test", n_test, is_test)):
            indices = np.flatnonzero(mask)
            if n is None:
                parts.append(indices)
                continue
            if n > indices.size:
                kind = "training" if name == "n_train" else "test"
                raise ValueError(
                    f"{name}={n} is larger than the {indices.size} {kind} samples available."
                )
            parts.append(_stratified_subset(indices, labels, n, rng))
        return parts[0], parts[1]

    n_samples = labels.size
    if n_train is not None and n_test is not None:
        if n_train + n_test > n_samples:
            raise ValueError(
                f"n_train + n_test = {n_train} + {n_test} is larger than the {n_samples} "
                "samples available."
            )
    else:
        for name, n, other in (("n_train", n_train, "test"), ("n_test", n_test, "training")):
            if n is not None and n >= n_samples:
                raise ValueError(
                    f"{name}={n} must be smaller than the {n_samples} samples available, "
                    f"to leave samples for the {other} set."
                )
    test_size: float | int | None = n_test
    if n_train is None and n_test is None:
        test_size = DEFAULT_TEST_FRACTION
    train, test = train_test_split(
        np.arange(n_samples),
        train_size=n_train,
        test_size=test_size,
        stratify=labels,
        random_state=rng,
    )
    return train, test
