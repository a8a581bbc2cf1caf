"""Plots of a scaling study (matplotlib, imported only here; returns Figures, shows nothing).

matplotlib ships with ``pip install 'eoembed[ui]'``; without it these functions raise ImportError saying so.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from eoembed.scaling.compute import L_REF, flops
from eoembed.scaling.fit import ScalingFit, loss_score_correlation


def _plt() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - matplotlib is in the ui extra
        raise ImportError("eoembed.scaling plots need matplotlib: pip install 'eoembed[ui]' (or matplotlib)") from err
    return plt


def _axes(ax: Any, ncols: int = 1, size: tuple[float, float] = (5.0, 4.0)) -> tuple[Any, Any]:
    plt = _plt()
    if ax is not None:
        return ax.figure, ax
    fig, axs = plt.subplots(1, ncols, figsize=(size[0] * ncols, size[1]), squeeze=False)
    plt.close(fig)  # returned, not shown: the notebook displays it when it is the cell's value
    return fig, axs[0] if ncols > 1 else axs[0, 0]


def plot_isoflop(fit: ScalingFit, ax: Any = None) -> Any:
    """y against x per iso-FLOP bucket (colour = compute), the fitted quadratics and their vertices (stars;
    hollow where not used). Returns the Figure."""
    plt = _plt()
    fig, ax = _axes(ax)
    runs, curves = fit.runs, fit.curves
    cmap = plt.get_cmap("viridis")
    lo, hi = np.log10(curves["flops"].min()), np.log10(curves["flops"].max())
    for _, c in curves.iterrows():
        col = cmap(0.0 if hi == lo else (np.log10(c["flops"]) - lo) / (hi - lo))
        g = runs[runs["bucket"] == c["bucket"]]
        ax.scatter(g[fit.x], g[fit.y], color=col, s=14, alpha=0.8, label=f"C={c['flops']:.1e}")
        if np.isfinite(c["a"]):
            u = np.linspace(np.log10(c["x_min"]), np.log10(c["x_max"]), 50)
            ax.plot(10 ** u, np.polyval([c["a"], c["b"], c["c"]], u), color=col, lw=1)
        if np.isfinite(c["x_opt"]):
            ax.scatter([c["x_opt"]], [c["y_opt"]], marker="*", s=120, edgecolors="k",
                       color=col if c["valid"] else "none", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel(fit.x)
    ax.set_ylabel(fit.y)
    ax.set_title(f"iso-FLOP curves ({'min' if fit.goal == 'min' else 'max'} = star)")
    ax.legend(fontsize=7)
    return fig


def plot_frontier(fit: ScalingFit, planted: dict[str, float] | None = None, ax: Any = None) -> Any:
    """Compute-optimal N and D (the vertices) against compute with the fitted power laws; the legend gives each
    exponent with its bootstrap interval (and a planted value, e.g. from ``planted_exponents``). Returns the
    Figure."""
    fig, ax = _axes(ax)
    ok = fit.curves[fit.curves["valid"]]
    cs = np.logspace(np.log10(fit.curves["flops"].min()), np.log10(fit.curves["flops"].max()), 20)
    ci = fit.exponents.attrs.get("ci", 0.95)
    for t, col, mark in (("n_opt", "C0", "o"), ("d_opt", "C1", "s")):
        if t not in fit.exponents.index:
            continue
        e = fit.exponents.loc[t]
        label = (f"{t} ~ C^{e['exponent']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}] ({ci:.0%} bootstrap)")
        if planted and t in planted:
            label += f", planted {planted[t]:.3f}"
        ax.scatter(ok["flops"], ok[t], color=col, marker=mark)
        ax.plot(cs, e["coef"] * cs ** e["exponent"], color=col, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C = 12 D (N_enc L_ref + N_proj) [FLOPs]")
    ax.set_ylabel("compute-optimal size")
    ax.set_title(f"compute-optimal frontier of {fit.y}")
    ax.legend(fontsize=7)
    return fig


def plot_loss_vs_score(table: pd.DataFrame, loss: str = "final_loss", score: str = "score", ax: Any = None,
                       width: float = 0.25) -> Any:
    """Downstream score against pretraining loss, coloured by compute, with Pearson r over all runs and the
    median r within iso-FLOP buckets in the title (the table needs the size columns). Returns the Figure."""
    fig, ax = _axes(ax)
    corr = loss_score_correlation(table, loss, score, by_bucket=True, width=width)
    t = table[table["status"] == "ok"] if "status" in table else table
    c = np.log10(t["flops"] if "flops" in t else flops(t["n_params_enc"], t["n_params_proj"], t["n_pixels"],
                                                        t["L_ref"] if "L_ref" in t else L_REF))
    sc = ax.scatter(t[loss], t[score], c=c, cmap="viridis", s=14)
    fig.colorbar(sc, ax=ax, label="log10 C [FLOPs]")
    within = corr.drop(index="all")["pearson_r"].median()
    ax.set_xlabel(loss)
    ax.set_ylabel(score)
    ax.set_title(f"Pearson r = {corr.loc['all', 'pearson_r']:.2f} (all runs), {within:.2f} (median within buckets)",
                 fontsize=9)
    return fig
