"""Straightforward per-fold reference of the NeuCo-Bench linear probe (one model, optimiser and DataLoader per
fold), used to check the batched engine statistically and as the baseline of benchmarks/bench_eval.py."""
from __future__ import annotations

import textwrap

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, SubsetRandomSampler
from torchmetrics.classification import BinaryF1Score
from torchmetrics.regression import R2Score


#: First lines of a script that runs NeuCo-Bench's own code in a subprocess (tests and
#: benchmarks/bench_neuco_parity.py): scikit-optimize, used only by its SVM probe, is stubbed when absent.
NEUCO_PRELUDE = textwrap.dedent("""
    import sys, types
    try:
        import skopt  # noqa: F401
    except ImportError:  # only NeuCo-Bench's SVM probe uses scikit-optimize; the linear probe never calls it
        sk, sp = types.ModuleType("skopt"), types.ModuleType("skopt.space")
        sk.BayesSearchCV = sp.Real = sp.Categorical = None
        sk.space = sp
        sys.modules.update({"skopt": sk, "skopt.space": sp})
""")


class _Rows(Dataset):
    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X = torch.as_tensor(X, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.X[i], self.y[i]


class _Probe(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d, 1)

    def forward(self, x):
        return self.linear(x).view(-1)


def reference_fold(ds: _Rows, train_idx, test_idx, classification: bool, epochs: int = 10,
                   batch_size: int = 64, lr: float = 1e-3) -> list[float]:
    """Held-out metric after every epoch of one fold."""
    train = DataLoader(ds, batch_size=batch_size, sampler=SubsetRandomSampler(list(train_idx)))
    test = DataLoader(ds, batch_size=batch_size, sampler=SubsetRandomSampler(list(test_idx)))
    model = _Probe(ds.X.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss() if classification else nn.MSELoss()
    metric = BinaryF1Score() if classification else R2Score()
    history = []
    for _ in range(epochs):
        model.train()
        for xb, yb in train:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        preds, targets = [], []
        with torch.no_grad():
            for xb, yb in test:
                preds.append(model(xb))
                targets.append(yb)
        history.append(float(metric(torch.cat(preds), torch.cat(targets))))
    return history


def reference_scores(prep, splits: dict, epochs: int = 10, seed: int = 42) -> np.ndarray:
    """Per-fold best-over-epochs scores (T, K) for a Prepared problem and eoembed's splits, tasks in order."""
    torch.manual_seed(seed)
    out = []
    for k, t in enumerate(prep.tasks):
        ds = _Rows(prep.X, np.nan_to_num(prep.Y[k]))
        cls = prep.task_types[t] == "classification"
        out.append([max(reference_fold(ds, tr, te, cls, epochs=epochs)) for tr, te in splits[t]])
    return np.asarray(out)
