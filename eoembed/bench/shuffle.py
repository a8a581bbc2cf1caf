"""NeuCo-Bench's random 90/10 folds without importing scikit-learn (about 1 s of ``eoembed bench``'s start-up).

:func:`shuffle_split` yields exactly the indices of ``sklearn.model_selection.ShuffleSplit(n_splits, test_size=
test_size, random_state=seed).split(range(n))`` (checked against scikit-learn by the tests): one
``numpy.random.RandomState(seed)`` permutation per fold, the first ``ceil(test_size * n)`` positions held out.
"""
from __future__ import annotations

from math import ceil

import numpy as np


def shuffle_split(n: int, n_splits: int, test_size: float = 0.1, seed: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) positions of ``n_splits`` random splits of ``range(n)``, as scikit-learn's ShuffleSplit."""
    if not 0 < float(test_size) < 1:
        raise ValueError(f"test_size={test_size!r}; use a fraction in (0, 1).")
    n_test = ceil(float(test_size) * n)
    n_train = n - n_test
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"{n} samples cannot be split with test_size={test_size}: a part would be empty.")
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(int(n_splits)):
        perm = rng.permutation(n)
        out.append((perm[n_test:n_test + n_train], perm[:n_test]))
    return out
