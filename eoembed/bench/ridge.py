"""The "ridge" mode: closed-form, tuned linear probes. NOT NeuCo-Bench (its numbers are not comparable with it).

Per fold (and per group of tasks sharing the same labelled rows) one eigendecomposition of the centred training
Gram matrix (D x D or n x n, whichever is smaller) gives the principal coordinates F = (X - mean) V of the
training rows, in which every penalty is diagonal:

- regression: ridge for all penalties at once; the penalty is chosen by exact leave-one-out error on the training
  part (hat-matrix formula, intercept unpenalised), then the test fold is predicted;
- classification: L2-penalised logistic regression (one-vs-rest for more than two classes) fitted by accelerated
  majorise-minimise steps with the fixed bound diag(e/4 + alpha) on the Hessian; the penalty is chosen by
  k-fold cross-validated log-loss inside the training part (the bound holds for every subset of the training
  rows, so the inner fits reuse the same eigendecomposition).
"""
from __future__ import annotations

import numpy as np
import torch

from eoembed import runtime
from eoembed.bench.metrics import balanced_accuracy_batched, chance_adjusted, r2_batched

#: Penalty grid, relative to the mean eigenvalue of the training Gram matrix (scale-free).
ALPHAS = np.logspace(-4, 2, 13)


def _eig_coordinates(Xtr: torch.Tensor, rel_tol: float = 1e-10):
    """(mean, V (D x r), e (r,)) with (Xtr-mean)^T (Xtr-mean) = V diag(e) V^T restricted to e > tol."""
    mean = Xtr.mean(0)
    Xc = Xtr - mean
    n, d = Xc.shape
    if n >= d:
        e, V = torch.linalg.eigh(Xc.T @ Xc)
    else:
        e, U = torch.linalg.eigh(Xc @ Xc.T)
        keep = e > rel_tol * e.max().clamp(min=1e-300)
        e, U = e[keep], U[:, keep]
        V = (Xc.T @ U) / e.sqrt()
    keep = e > rel_tol * e.max().clamp(min=1e-300)
    return mean, V[:, keep], e[keep]


def _ridge_fold(F, e, y, Fte, alphas):
    """Ridge in principal coordinates for columns of y (n, T): LOO-chosen penalty, test predictions (m, T)."""
    n = F.shape[0]
    ym = y.mean(0)
    yc = y - ym
    U = F / e.sqrt()                                          # left singular vectors (n, r)
    Uy = U.T @ yc                                             # (r, T)
    best_err = torch.full((y.shape[1],), float("inf"), dtype=F.dtype)
    best = ym.expand(Fte.shape[0], y.shape[1]).clone()       # fallback: the training mean
    U2 = U * U
    for a in alphas:
        shrink = e / (e + a)                                  # (r,)
        fitted = U @ (Uy * shrink[:, None]) + ym              # (n, T)
        h = 1.0 / n + U2 @ shrink                             # hat diagonal incl. intercept (n,)
        loo = ((y - fitted) / (1.0 - h)[:, None]) ** 2
        err = torch.nan_to_num(loo.mean(0), nan=float("inf"))
        better = err < best_err
        if bool(better.any()):
            theta = Uy / (e + a)[:, None] * e.sqrt()[:, None]  # coefficients on F: w = V theta
            pred = Fte @ theta + ym
            best = torch.where(better[None, :], pred, best)
            best_err = torch.where(better, err, best_err)
    return best


def _logistic_mm(F, Y1, e, alphas, row_masks, n_iter: int = 60):
    """Penalised logistic fits for every (row subset, alpha, class column) at once.

    F (n, r) centred principal coordinates; Y1 (n, C) 0/1 targets; row_masks (S, n) training rows of each
    subset. Returns (theta (S, A, r, C), bias (S, A, C))."""
    n, r = F.shape
    S, A, C = row_masks.shape[0], len(alphas), Y1.shape[1]
    a = torch.as_tensor(np.asarray(alphas), dtype=F.dtype)
    inv_bound = 1.0 / (e[None, :] / 4.0 + a[:, None])          # (A, r)
    mask = row_masks.to(F.dtype)[:, None, :, None]             # (S, 1, n, 1)
    theta = torch.zeros(S, A, r, C, dtype=F.dtype)
    bias = torch.zeros(S, A, 1, C, dtype=F.dtype)
    th_prev, b_prev = theta.clone(), bias.clone()
    for k in range(1, n_iter + 1):
        mom = (k - 1) / (k + 2)
        th_y = theta + mom * (theta - th_prev)
        b_y = bias + mom * (bias - b_prev)
        z = torch.matmul(F, th_y) + b_y                      # (S, A, n, C)
        resid = (torch.sigmoid(z) - Y1) * mask
        g_th = torch.matmul(F.T, resid) + a[None, :, None, None] * th_y
        g_b = resid.sum(2, keepdim=True)
        th_prev, b_prev = theta, bias
        theta = th_y - g_th * inv_bound[None, :, :, None]
        bias = b_y - g_b * (4.0 / n)
    return theta, bias[:, :, 0, :]


def _logistic_fold(F, e, classes_idx, n_classes, Fte, alphas, inner_folds, rng):
    """Logistic probe with inner-CV penalty; returns predicted class indices on the test rows."""
    n = F.shape[0]
    C = 1 if n_classes == 2 else n_classes
    Y1 = torch.zeros(n, C, dtype=F.dtype)
    if C == 1:
        Y1[:, 0] = (classes_idx == 1).to(F.dtype)
    else:
        Y1[torch.arange(n), classes_idx] = 1.0
    k = max(2, min(inner_folds, n // 2))
    fold_of = torch.as_tensor(rng.permutation(np.arange(n) % k))
    masks = torch.stack([fold_of != j for j in range(k)] + [torch.ones(n, dtype=torch.bool)])
    theta, bias = _logistic_mm(F, Y1, e, alphas, masks)
    z = torch.matmul(F, theta[:k]) + bias[:k, :, None, :]     # (k, A, n, C)
    p = torch.sigmoid(z).clamp(1e-7, 1 - 1e-7)
    ll = -(Y1 * p.log() + (1 - Y1) * (1 - p).log()).sum(-1)   # (k, A, n)
    held = (~masks[:k]).to(F.dtype)[:, None, :]
    cv = (ll * held).sum((0, 2))                              # (A,)
    best = int(torch.argmin(cv))
    zt = Fte @ theta[k, best] + bias[k, best]
    if C == 1:
        return (zt[:, 0] > 0).long()
    return zt.argmax(1)


@runtime.full_float32
def ridge_scores(X, Y, Y_raw, tasks, task_types, splits, metric: str = "neuco", alphas=None,
                 inner_folds: int = 3, seed: int = 42, device=None, progress: bool = True) -> np.ndarray:
    """Held-out scores (T, K) of the ridge / logistic probes on the given splits.

    splits[t] is a list of K (train_rows, test_rows) arrays of row indices into X for task t."""
    from tqdm.auto import tqdm

    device = torch.device(device) if device is not None else torch.device("cpu")
    Xd = torch.as_tensor(np.asarray(X), dtype=torch.float64, device=device)
    T, K = len(tasks), len(splits[0])
    scores = np.full((T, K), np.nan)
    rng = np.random.default_rng(seed)
    groups: dict[tuple, list[int]] = {}
    for ti in range(T):
        key = tuple(hash(tr.tobytes()) ^ hash(te.tobytes()) for tr, te in splits[ti])
        groups.setdefault(key, []).append(ti)
    todo = [(g, k) for g in groups.values() for k in range(K)]
    for members, k in tqdm(todo, desc="ridge folds", disable=not progress, leave=False):
        tr, te = splits[members[0]][k]
        tr_t = torch.as_tensor(tr, device=device)
        te_t = torch.as_tensor(te, device=device)
        mean, V, e = _eig_coordinates(Xd[tr_t])
        F = (Xd[tr_t] - mean) @ V
        Fte = (Xd[te_t] - mean) @ V
        a_grid = torch.as_tensor(ALPHAS if alphas is None else alphas, dtype=torch.float64) * float(e.mean())
        reg = [ti for ti in members if task_types[tasks[ti]] == "regression"]
        if reg:
            y = torch.as_tensor(np.stack([Y[ti][tr] for ti in reg], 1), dtype=torch.float64, device=device)
            yte = torch.as_tensor(np.stack([Y[ti][te] for ti in reg], 1), dtype=torch.float64, device=device)
            pred = _ridge_fold(F, e, y, Fte, a_grid.tolist())
            mask = torch.ones_like(yte, dtype=torch.bool)
            r2 = r2_batched(pred.T, yte.T, mask.T).cpu().numpy()
            for j, ti in enumerate(reg):
                scores[ti, k] = max(r2[j], 0.0) if metric == "tessera" else r2[j]
        for ti in members:
            if task_types[tasks[ti]] != "classification":
                continue
            classes = np.unique(Y_raw[ti][np.concatenate([tr, te])])
            code_tr = torch.as_tensor(np.searchsorted(classes, Y_raw[ti][tr]), device=device)
            code_te = torch.as_tensor(np.searchsorted(classes, Y_raw[ti][te]), device=device)
            pred = _logistic_fold(F, e, code_tr, len(classes), Fte, a_grid.tolist()[::2], inner_folds, rng)
            scores[ti, k] = _class_score(pred, code_te, len(classes), metric)
    return scores


def _class_score(pred: torch.Tensor, target: torch.Tensor, n_classes: int, metric: str) -> float:
    mask = torch.ones(1, len(target), dtype=torch.bool)
    if metric == "tessera":
        bacc = balanced_accuracy_batched(pred[None], target[None], mask, n_classes)
        return float(chance_adjusted(bacc, n_classes)[0])
    f1s = []
    positives = [1] if n_classes == 2 else range(n_classes)
    for c in positives:
        tp = int(((pred == c) & (target == c)).sum())
        fp = int(((pred == c) & (target != c)).sum())
        fn = int(((pred != c) & (target == c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0)
    return float(np.mean(f1s))
