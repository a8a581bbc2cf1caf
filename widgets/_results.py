"""Readers of an ``eoembed demo`` results folder for the explorer views (labels, split, histories, scores)."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _root(results_dir: str | os.PathLike) -> Path:
    from eoembed.errors import DataFileNotFound

    p = Path(results_dir)
    if not p.is_dir():
        raise DataFileNotFound(f"results folder {str(p)!r} does not exist; run `eoembed demo {p}` first")
    return p


def summary(results_dir: str | os.PathLike) -> dict[str, Any]:
    """``demo_summary.json`` of a results folder ({} when absent)."""
    p = _root(results_dir) / "demo_summary.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def labels(results_dir: str | os.PathLike, split: bool = True) -> pd.DataFrame | None:
    """Labels of ``RESULTS/sample/labels`` (index id, one column per task), plus a ``split`` column ("select" /
    "report" / "unlabelled") of the compressor's selection split when ``compress/config.json`` records it and the
    recomputed split matches its id hash (else a warning and no column). None when the folder has no labels."""
    root = _root(results_dir)
    d = root / "sample" / "labels"
    if not d.is_dir():
        return None
    from eoembed.data import read_labels

    lab = read_labels(d)
    lab.index = lab.index.astype(str)
    if split:
        s = _split(root, lab)
        if s is not None:
            lab = lab.assign(split=s)
    return lab


def _split(root: Path, lab: pd.DataFrame) -> pd.Series | None:
    cfg_p = root / "compress" / "config.json"
    if not cfg_p.is_file():
        return None
    sel = json.loads(cfg_p.read_text()).get("selection")
    if not sel or sel.get("kind") != "samples":
        return None
    from eoembed.compress import split_labels
    from eoembed.compress.selection import _sha1

    sp = split_labels(lab, select_fraction=sel["select_fraction"], seed=sel["seed"])
    if _sha1(sp.select_ids) != sel.get("select_ids_sha1"):
        warnings.warn(f"the selection split recorded in {str(cfg_p)!r} could not be reproduced from the labels; "
                      "the views show no 'split' colouring", stacklevel=3)
        return None
    out = pd.Series("unlabelled", index=lab.index, dtype=object)
    out[out.index.isin(sp.select_ids)] = "select"
    out[out.index.isin(sp.report_ids)] = "report"
    return out


def compressor_config(results_dir: str | os.PathLike) -> dict[str, Any]:
    """``compress/config.json`` ({} when absent)."""
    p = _root(results_dir) / "compress" / "config.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def histories(results_dir: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Training histories: ``fused_ae`` (compress/history.csv) and every ablation run (ablation/*/history.csv,
    keyed by the row name in its ablation_row.json)."""
    root = _root(results_dir)
    out: dict[str, pd.DataFrame] = {}
    h = root / "compress" / "history.csv"
    if h.is_file():
        out["fused_ae"] = pd.read_csv(h)
    for row_p in sorted((root / "ablation").glob("*/ablation_row.json")):
        hp = row_p.parent / "history.csv"
        if hp.is_file():
            out[json.loads(row_p.read_text())["row"]["combination"]] = pd.read_csv(hp)
    return out


def bench_scores(results_dir: str | os.PathLike, mode: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, per-task Q) of the methods scored in ``RESULTS/bench/<mode>/<name>/results_summary.json``.

    table (index: method name): kind ("single" model, "fused" compressor, "baseline"), q_bar (Q-bar on all labelled
    samples: for the compressor, half of them chose its epoch, so this is not a held-out score),
    q_null / q_null_std / q_gap from demo_summary.json when present. per_task: one row per method, one column per
    task. ``mode`` defaults to the demo's probe mode.
    """
    from eoembed.errors import DataFileNotFound

    root = _root(results_dir)
    summ = summary(root)
    mode = mode or summ.get("mode") or "ridge"
    d = root / "bench" / mode
    files = sorted(d.glob("*/results_summary.json"))
    if not files:
        raise DataFileNotFound(f"no bench results in {str(d)!r} (expected <name>/results_summary.json); run "
                               f"`eoembed demo {root}` first")
    models = set(summ.get("models") or [])
    if (root / "emb.zarr").is_dir():
        models |= {p.name for p in (root / "emb.zarr").iterdir() if p.is_dir()}
    rows, per_task = {}, {}
    for f in files:
        r = json.loads(f.read_text())
        name = f.parent.name
        kind = "single" if name in models else "fused" if name.startswith("fused") else "baseline"
        nc = summ.get("null_control", {}).get(name, {})
        q = float(r["overall_q_score"])
        rows[name] = {"kind": kind, "q_bar": q, "q_null": nc.get("q_mean", np.nan),
                      "q_null_std": nc.get("q_std", np.nan), "q_gap": q - nc["q_mean"] if nc else np.nan,
                      "z": summ.get("z", {}).get(name, np.nan)}
        per_task[name] = r["task_q_scores"]
    order = {"single": 0, "fused": 1, "baseline": 2}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("combination")
    table = table.sort_values(["kind", "q_bar"], key=lambda c: c.map(order) if c.name == "kind" else -c,
                              kind="stable")
    pt = pd.DataFrame.from_dict(per_task, orient="index").reindex(table.index).rename_axis("combination")
    table.attrs["mode"] = mode
    table.attrs["note"] = (f"Q-bar of {mode} probes on all labelled samples (RESULTS/bench/{mode}); the fused "
                           "compressor's epoch was chosen on half of them (its held-out score is in demo_summary)")
    return table, pt


def ablation_scores(results_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(table, per-task Q) of the finished rows of an ``ablate(..., out=RESULTS/ablation)`` run, or None."""
    files = sorted((_root(results_dir) / "ablation").glob("*/ablation_row.json"))
    if not files:
        return None
    recs = [json.loads(f.read_text()) for f in files]
    table = pd.DataFrame([r["row"] for r in recs]).set_index("combination")
    per_task = pd.DataFrame.from_dict({r["row"]["combination"]: r["q"] for r in recs}, orient="index")
    return table, per_task.reindex(table.index).rename_axis("combination")
