"""Iso-FLOP analysis of a sweep table (Hoffmann et al. 2022 "approach 2", as in the TESSERA scaling study).

1. :func:`isoflop_buckets`: group runs of about equal compute C (FLOPs) into buckets;
2. :func:`fit_isoflop`: in each bucket fit ``y = a u^2 + b u + c`` with ``u = log10 N`` (N = encoder
   parameters by default) and take the vertex ``N_opt`` (minimum for a loss, maximum for a score), and
   ``D_opt = C / (12 (N_opt L_ref + N_proj))``, the data that spends the bucket's compute at that size;
3. :func:`fit_power_law`: least squares of ``log10 N_opt = a log10 C + k`` through the vertices (same for D_opt);
4. :func:`scaling_laws`: all of it, with bootstrap intervals (runs resampled within each bucket, everything
   refitted) and leave-one-bucket-out ranges for the exponents;
5. :func:`loss_score_correlation`: does pretraining loss predict the downstream score?

Inputs are the sweep table (a DataFrame from :func:`eoembed.scaling.read_sweep`, or the sweep folder) or any
DataFrame with the same columns. A Barlow Twins loss grows with the projector width (it sums over its dimensions):
compare losses at one projector size (filter the table), or fit the downstream score.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence
import warnings

import numpy as np
import pandas as pd

from eoembed.errors import DataError
from eoembed.scaling.compute import L_REF, flops

#: Columns a table needs for the analysis (the run function's outputs).
SIZE_COLUMNS = ("n_params_enc", "n_params_proj", "n_pixels")
NAN_POLICIES = ("raise", "omit")


def _goal(y: str, goal: str | None) -> str:
    if goal is None:
        if "loss" in y:
            return "min"
        if "score" in y:
            return "max"
        raise DataError(f"cannot tell whether {y!r} is to be minimised or maximised; pass goal='min' or 'max'")
    if goal not in ("min", "max"):
        raise DataError(f"goal must be 'min' or 'max', got {goal!r}")
    return goal


def _ids(df: pd.DataFrame, mask: Any) -> str:
    idx = df.loc[mask, "run_id"] if "run_id" in df else df.index[mask]
    items = [str(v) for v in list(idx)[:5]]
    return ", ".join(items) + (f" ... ({int(np.sum(mask))} in all)" if int(np.sum(mask)) > 5 else "")


def _as_table(table: Any) -> Any:
    """A sweep folder or table file read with :func:`eoembed.scaling.read_sweep`; anything else as it is."""
    if isinstance(table, (str, os.PathLike)):
        from eoembed.scaling.runner import read_sweep
        return read_sweep(table)
    return table


def _checked(table: pd.DataFrame, cols: Sequence[str], nan_policy: str) -> pd.DataFrame:
    """Copy of the table's usable rows; DataError for missing columns, NaN (unless omitted), sizes <= 0."""
    table = _as_table(table)
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"table must be a DataFrame (eoembed.scaling.read_sweep(out)), got {type(table).__name__}")
    if nan_policy not in NAN_POLICIES:
        raise DataError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    missing = [c for c in cols if c not in table]
    if missing:
        raise DataError(f"sweep table lacks column(s) {missing} (has {list(table.columns)}); the run function must "
                        "return them")
    df = table.copy()
    if "status" in df:
        df = df[df["status"] == "ok"]
    if df.empty:
        raise DataError("sweep table has no finished runs")
    for c in cols:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    bad = ~np.isfinite(df[list(cols)].to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        which = [c for c in cols if (~np.isfinite(df.loc[bad, c].to_numpy(dtype=float))).any()]
        if nan_policy == "raise":
            raise DataError(f"{int(bad.sum())} run(s) have NaN/inf in {which}: {_ids(df, bad)}; fix or re-run them, "
                            "or pass nan_policy='omit' to leave them out of the fit (they are then counted in "
                            "the result's n_omitted)")
        warnings.warn(f"left out {int(bad.sum())} run(s) with NaN/inf in {which}: {_ids(df, bad)}", stacklevel=3)
        df = df[~bad]
    for c in (c for c in cols if c in SIZE_COLUMNS or c in ("flops", "L_ref")):
        low = df[c] < 0 if c == "n_params_proj" else df[c] <= 0
        if low.any():
            raise DataError(f"{int(low.sum())} run(s) have {c} {'< 0' if c == 'n_params_proj' else '<= 0'}: "
                            f"{_ids(df, low.to_numpy())}; sizes must be positive counts")
    df.attrs["n_omitted"] = int(bad.sum())
    return df


def _with_flops(df: pd.DataFrame) -> pd.DataFrame:
    if "flops" not in df:
        if "L_ref" not in df:
            df["L_ref"] = float(L_REF)
        df["flops"] = flops(df["n_params_enc"], df["n_params_proj"], df["n_pixels"], df["L_ref"])
    return df


def isoflop_buckets(table: pd.DataFrame, width: float = 0.25, budget: str | None = None,
                    nan_policy: str = "raise") -> pd.DataFrame:
    """The table with ``bucket`` (nominal compute, FLOPs) and ``bucket_flops`` (geometric mean of the runs' C).

    Runs are bucketed by ``round(log10 C / width)`` (bins of ``width`` decades centred on multiples of it), or,
    with ``budget`` (e.g. ``"cfg_flops"``, the budget a run was planned for), exactly by that column.
    C is the ``flops`` column, else computed from the sizes (:func:`eoembed.scaling.flops`).
    """
    cols = list(SIZE_COLUMNS) + ([budget] if budget else [])
    df = _with_flops(_checked(table, cols, nan_policy))
    if budget is not None:
        df["bucket"] = df[budget].astype(float)
        if (df["bucket"] <= 0).any():
            raise DataError(f"budget column {budget!r} has values <= 0; it must hold FLOPs")
    else:
        if not (np.isfinite(width) and width > 0):
            raise DataError(f"width must be > 0 decades of compute, got {width!r}")
        df["bucket"] = 10.0 ** (np.round(np.log10(df["flops"].to_numpy(dtype=float)) / width) * width)
    df["bucket_flops"] = df.groupby("bucket")["flops"].transform(lambda c: float(np.exp(np.log(c).mean())))
    return df


def _vertex(u: np.ndarray, v: np.ndarray, goal: str, min_points: int, window: float | None) -> dict[str, Any]:
    """Quadratic fit of v in u = log10 x (only points within ``window`` decades of the best run, if given) and
    its vertex; ``reason`` says why a vertex is not usable."""
    if window is not None and len(u):
        best = u[np.argmin(v) if goal == "min" else np.argmax(v)]
        keep = np.abs(u - best) <= window + 1e-9
        u, v = u[keep], v[keep]
    out: dict[str, Any] = {"n_runs": len(u), "n_sizes": len(np.unique(u)), "a": np.nan, "b": np.nan, "c": np.nan,
                           "u_opt": np.nan, "y_opt": np.nan, "u_min": float(np.min(u)) if len(u) else np.nan,
                           "u_max": float(np.max(u)) if len(u) else np.nan, "valid": False, "reason": ""}
    if out["n_sizes"] < min_points:
        out["reason"] = f"{out['n_sizes']} distinct sizes (< {min_points})"
        return out
    a, b, c = np.polyfit(u, v, 2)
    out.update(a=a, b=b, c=c)
    if (a <= 0 and goal == "min") or (a >= 0 and goal == "max"):
        out["reason"] = f"curve is {'concave' if a < 0 else 'convex' if a > 0 else 'flat'}: no {goal}imum"
        return out
    u_opt = -b / (2 * a)
    out.update(u_opt=u_opt, y_opt=c - b * b / (4 * a))
    if not (out["u_min"] <= u_opt <= out["u_max"]):
        out["reason"] = "vertex outside the sampled sizes (extrapolated)"
        return out
    out["valid"] = True
    return out


def _opt(x: str, x_opt: float, c: float, lref: float, nproj: float) -> dict[str, float]:
    """The vertex as ``x_opt`` and, for the encoder or data axis, the compute-optimal ``n_opt`` and ``d_opt``."""
    if x == "n_params_enc":
        return {"x_opt": x_opt, "n_opt": x_opt, "d_opt": c / (12.0 * (x_opt * lref + nproj))}
    if x == "n_pixels":
        return {"x_opt": x_opt, "d_opt": x_opt, "n_opt": (c / (12.0 * x_opt) - nproj) / lref}
    return {"x_opt": x_opt}


def _buckets(df: pd.DataFrame, x: str, y: str) -> list[dict[str, Any]]:
    """Per bucket: its key, compute, log10 x, y, median L_ref and N_proj (numpy, for fast refits)."""
    if (df[x] <= 0).any():
        raise DataError(f"x={x!r} has values <= 0 in runs {_ids(df, (df[x] <= 0).to_numpy())}; it is fitted in log")
    return [{"bucket": float(b), "flops": float(g["bucket_flops"].iloc[0]),
             "u": np.log10(g[x].to_numpy(dtype=float)), "v": g[y].to_numpy(dtype=float),
             "lref": float(g["L_ref"].median()), "nproj": float(g["n_params_proj"].median())}
            for b, g in df.groupby("bucket", sort=True)]


def _curve_rows(groups: list[dict[str, Any]], x: str, goal: str, min_points: int, window: float | None,
                idx: list[np.ndarray] | None = None) -> list[dict[str, Any]]:
    rows = []
    for k, g in enumerate(groups):
        u, v = (g["u"], g["v"]) if idx is None else (g["u"][idx[k]], g["v"][idx[k]])
        r = _vertex(u, v, goal, min_points, window)
        x_opt = 10.0 ** r.pop("u_opt")
        rows.append({"bucket": g["bucket"], "flops": g["flops"], **r, "x_min": 10.0 ** r.pop("u_min"),
                     "x_max": 10.0 ** r.pop("u_max"), **_opt(x, x_opt, g["flops"], g["lref"], g["nproj"])})
    return rows


def fit_isoflop(table: pd.DataFrame, y: str = "final_loss", x: str = "n_params_enc", goal: str | None = None,
                width: float = 0.25, budget: str | None = None, min_points: int = 3, window: float | None = 1.0,
                nan_policy: str = "raise") -> pd.DataFrame:
    """One quadratic in log10(x) per iso-FLOP bucket and its vertex (module doc); one row per bucket.

    y: "final_loss" (goal "min") or "score" (goal "max") or any column with ``goal``. x: "n_params_enc" (then
    ``n_opt`` = vertex and ``d_opt`` = C/(12 (n_opt L_ref + N_proj))) or "n_pixels" (``d_opt`` = vertex and
    ``n_opt`` from C). window: fit only the runs within this many decades of x from the bucket's best run (a
    quadratic is a good approximation only near the optimum; None: all runs). Buckets come from
    :func:`isoflop_buckets` (``width``, ``budget``) unless the table has ``bucket`` and ``bucket_flops`` columns.
    Columns: bucket, flops (geometric mean C), n_runs and n_sizes (used in the fit), a, b, c (coefficients in
    log10 x), y_opt, valid, reason (why a vertex is not used: too few sizes, wrong curvature, vertex outside the
    sizes), x_opt, x_min, x_max, n_opt, d_opt.
    """
    goal = _goal(y, goal)
    table = _as_table(table)
    if x not in ("n_params_enc", "n_pixels") and x not in table:
        raise DataError(f"x={x!r} is not a column of the table")
    if window is not None and not (np.isfinite(window) and window > 0):
        raise DataError(f"window must be None or > 0 decades, got {window!r}")
    if "bucket" in table and "bucket_flops" in table:
        df = _with_flops(_checked(table, list(SIZE_COLUMNS) + [y, x], nan_policy))
    else:
        df = isoflop_buckets(_checked(table, list(SIZE_COLUMNS) + [y, x], nan_policy), width, budget)
    out = pd.DataFrame(_curve_rows(_buckets(df, x, y), x, goal, min_points, window))
    out.attrs.update(x=x, y=y, goal=goal, window=window, n_omitted=df.attrs.get("n_omitted", 0))
    return out


def fit_power_law(curves: pd.DataFrame, target: str = "n_opt", x: str = "flops") -> dict[str, float]:
    """Least-squares fit ``log10 target = exponent * log10 x + log10 coef`` through the valid vertices of
    :func:`fit_isoflop`; returns ``{"exponent", "coef", "n_buckets"}``. DataError with fewer than 2 buckets."""
    if target not in curves:
        raise DataError(f"curves have no column {target!r} (columns {list(curves.columns)})")
    ok = curves[curves["valid"]] if "valid" in curves else curves
    ok = ok[np.isfinite(ok[target]) & (ok[target] > 0)]
    if len(ok) < 2:
        reasons = "; ".join(f"bucket {b:.3g}: {r}" for b, r in zip(curves.get("bucket", []), curves.get("reason", []))
                            if r)
        raise DataError(f"a power law of {target} needs vertices in >= 2 iso-FLOP buckets, got {len(ok)} of "
                        f"{len(curves)}" + (f" ({reasons})" if reasons else "") + "; widen the sweep: more "
                        "compute budgets, and per budget sizes on both sides of the optimum")
    slope, icpt = np.polyfit(np.log10(ok[x].to_numpy(dtype=float)), np.log10(ok[target].to_numpy(dtype=float)), 1)
    return {"exponent": float(slope), "coef": float(10.0 ** icpt), "n_buckets": int(len(ok))}


@dataclass
class ScalingFit:
    """Result of :func:`scaling_laws`: runs (with buckets), curves (one row per bucket, :func:`fit_isoflop`),
    exponents (one row per target: exponent, coef, ci_low/ci_high (bootstrap percentile interval), lobo_low/
    lobo_high (range over leave-one-bucket-out fits), n_buckets, n_boot (bootstrap draws that gave a fit)),
    boot (the bootstrap exponents, one row per draw)."""

    y: str
    x: str
    goal: str
    runs: pd.DataFrame
    curves: pd.DataFrame
    exponents: pd.DataFrame
    boot: pd.DataFrame = field(repr=False)

    def __repr__(self) -> str:
        return (f"ScalingFit(y={self.y!r}, x={self.x!r}, goal={self.goal!r}, {len(self.runs)} runs, "
                f"{int(self.curves['valid'].sum())}/{len(self.curves)} buckets with a vertex)\n"
                f"{self.exponents.round(3).to_string()}")


def scaling_laws(table: pd.DataFrame, y: str = "final_loss", x: str = "n_params_enc", goal: str | None = None,
                 width: float = 0.25, budget: str | None = None, min_points: int = 3, window: float | None = 1.0,
                 n_boot: int = 200,
                 ci: float = 0.95, seed: int = 0, nan_policy: str = "raise",
                 targets: Sequence[str] = ("n_opt", "d_opt")) -> ScalingFit:
    """Iso-FLOP fits and power laws ``N_opt ~ C^a``, ``D_opt ~ C^b`` with intervals (module doc).

    targets: vertex columns to fit against C ("n_opt", "d_opt", "x_opt"); with an x other than n_params_enc /
    n_pixels (e.g. ``x="n_params_proj"`` for the projector) the power law is fitted to its vertex ``x_opt``.

    Bootstrap: ``n_boot`` draws resample the runs within each bucket (with replacement), refit every quadratic and
    the power law; the interval is the central ``ci`` percentile range of the draws that gave >= 2 vertices.
    Leave-one-bucket-out: the range of the exponent over fits without each bucket in turn (needs >= 3 buckets).
    """
    if not 0 < ci < 1:
        raise DataError(f"ci must be in (0, 1), got {ci!r}")
    if int(n_boot) < 0:
        raise DataError(f"n_boot must be >= 0, got {n_boot!r}")
    table = _as_table(table)
    runs = isoflop_buckets(_checked(table, list(SIZE_COLUMNS) + [y] + ([x] if x in table else []), nan_policy),
                           width, budget)
    if runs["bucket"].nunique() < 2:
        raise DataError(f"all {len(runs)} runs fall into one iso-FLOP bucket (C ~ {runs['bucket'].iloc[0]:.3g} FLOPs); "
                        "a power law needs >= 2 compute budgets (3 for intervals): add data or model sizes, or pass "
                        "a smaller width")
    curves = fit_isoflop(runs, y, x, goal, min_points=min_points, window=window)
    goal = curves.attrs["goal"]
    skipped = curves[~curves["valid"]]
    if len(skipped):
        warnings.warn("iso-FLOP buckets without a usable vertex (not in the power law): " + "; ".join(
            f"C={b:.3g}: {r}" for b, r in zip(skipped["bucket"], skipped["reason"])), stacklevel=2)
    targets = [t for t in targets if t in curves] or ["x_opt"]  # another x (e.g. n_params_proj): its vertex
    point = {t: fit_power_law(curves, t) for t in targets}
    rng = np.random.default_rng(seed)
    groups = _buckets(runs, x, y)
    draws = []
    for _ in range(int(n_boot)):
        pts: dict[str, list[tuple[float, float]]] = {t: [] for t in targets}
        for g in groups:
            i = rng.integers(0, len(g["u"]), len(g["u"]))
            r = _vertex(g["u"][i], g["v"][i], goal, min_points, window)
            if r["valid"]:
                for t, val in _opt(x, 10.0 ** r["u_opt"], g["flops"], g["lref"], g["nproj"]).items():
                    if t in pts and np.isfinite(val) and val > 0:
                        pts[t].append((np.log10(g["flops"]), np.log10(val)))
        draws.append({t: (np.polyfit(*np.array(p).T, 1)[0] if len(p) >= 2 else np.nan) for t, p in pts.items()})
    boot = pd.DataFrame(draws, columns=targets)
    valid = curves[curves["valid"]]
    rows = []
    for t in targets:
        b = boot[t].dropna().to_numpy() if len(boot) else np.array([])
        lo, hi = (np.quantile(b, [(1 - ci) / 2, (1 + ci) / 2]) if len(b) else (np.nan, np.nan))
        lobo = [fit_power_law(valid.drop(index=i), t)["exponent"] for i in valid.index] if len(valid) >= 3 else []
        rows.append({"target": t, **point[t], "ci_low": float(lo), "ci_high": float(hi),
                     "lobo_low": float(min(lobo)) if lobo else np.nan,
                     "lobo_high": float(max(lobo)) if lobo else np.nan, "n_boot": int(len(b))})
    exps = pd.DataFrame(rows).set_index("target")
    exps.attrs.update(ci=ci, y=y, x=x)
    return ScalingFit(y=y, x=x, goal=goal, runs=runs, curves=curves, exponents=exps, boot=boot)


def loss_score_correlation(table: pd.DataFrame, loss: str = "final_loss", score: str = "score",
                           by_bucket: bool = True, width: float = 0.25, nan_policy: str = "raise") -> pd.DataFrame:
    """Pearson and Spearman correlation of pretraining loss and downstream score over all runs (row "all") and,
    with ``by_bucket``, within each iso-FLOP bucket (compute drives both, so within-bucket is the fairer test).
    Columns: n, pearson_r, pearson_p, spearman_rho, spearman_p (NaN where n < 3 or a column is constant)."""
    from scipy import stats

    cols = [loss, score] + ([c for c in SIZE_COLUMNS] if by_bucket else [])
    df = _checked(table, cols, nan_policy)
    groups: list[tuple[Any, pd.DataFrame]] = [("all", df)]
    if by_bucket:
        df = isoflop_buckets(df, width)
        groups += [(f"{b:.3g}", g) for b, g in df.groupby("bucket", sort=True)]
    rows = []
    for name, g in groups:
        a, s = g[loss].to_numpy(dtype=float), g[score].to_numpy(dtype=float)
        r = {"group": name, "n": len(g), "pearson_r": np.nan, "pearson_p": np.nan, "spearman_rho": np.nan,
             "spearman_p": np.nan}
        if len(g) >= 3 and np.ptp(a) > 0 and np.ptp(s) > 0:
            pr, sr = stats.pearsonr(a, s), stats.spearmanr(a, s)
            r.update(pearson_r=float(pr[0]), pearson_p=float(pr[1]), spearman_rho=float(sr[0]),
                     spearman_p=float(sr[1]))
        rows.append(r)
    return pd.DataFrame(rows).set_index("group")
