"""Random vs spatial folds: how much do random 90/10 folds overstate scores when samples are spatially clustered?

Same embeddings, same probes, same number of folds; only the split changes:
- ``shuffle``: NeuCo-Bench's K random 90/10 folds;
- ``spatial`` blocks of --km km (10% of the blocks held out per fold) and ``spatial`` KMeans clusters (default 20).

1. WorldCereal labelled pixels (../shared, 500 pixels in Uganda / South Sudan, many pixels per field): binary tasks
   sorghum / maize (from balancing_class); embeddings: real Presto (128-d, shared weights) and raw monthly S1/S2
   band values (12 months x 12 bands; a month without an observation is filled with the pixel's mean of that band,
   a band never observed with 0; counts recorded).
2. The generated sample (200 samples, seed 0, 32 px, the data of notebooks/03_evaluation.ipynb): raw-band
   baseline (per-season band means), its 11 tasks.
Both probes: ridge (tuned closed-form, not NeuCo-Bench) and compat (NeuCo-Bench's 10-epoch linear probe).
Writes benchmarks/results/bench_splits.json.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_splits.py [--shared ../shared] [--folds 40] [--km 10]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def worldcereal_inputs(shared: Path, weights: Path):
    """(embeddings {name: DataArray with lat/lon coords}, labels DataFrame, facts)."""
    import xarray as xr
    from eoembed.models.presto import presto_embed_pixels
    from eoembed.product import pixel_series

    s = pixel_series(shared / "data/worldcereal/test_public_extractions.parquet")
    lab = s["labels"]
    cls = pd.Series(np.asarray(lab["balancing_class"]), index=s["ids"])
    labels = pd.DataFrame({"sorghum": (cls == "sorghum").astype(float), "maize": (cls == "maize").astype(float)})
    labels.index.name = "id"
    labels.attrs["task_types"] = {"sorghum": "classification", "maize": "classification"}
    t0 = time.perf_counter()
    presto = presto_embed_pixels(s["values"], s["bands"], s["months"], s["latlon"], weights=str(weights),
                                 progress=False)
    t_presto = time.perf_counter() - t0
    obs = [j for j, b in enumerate(s["bands"]) if b in ("VV", "VH") or b.startswith("B")]
    v = s["values"][:, :, obs].astype(np.float64)                       # (pixel, month, band)
    n_missing = int(np.isnan(v).sum())
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # bands never observed: mean of nothing
        fill = np.nan_to_num(np.nanmean(v, axis=1, keepdims=True), nan=0.0)
    v = np.where(np.isnan(v), np.broadcast_to(fill, v.shape), v)
    raw = v.reshape(len(v), -1)

    def da(x):
        return xr.DataArray(x.astype(np.float32), dims=("sample", "feature"),
                            coords={"sample": s["ids"], "lat": ("sample", s["latlon"][:, 0]),
                                    "lon": ("sample", s["latlon"][:, 1])})

    facts = {"pixels": int(len(s["ids"])), "presto_seconds": t_presto, "raw_features": int(raw.shape[1]),
             "raw_values_filled": n_missing, "raw_values_total": int(v.size),
             "positives": {t: int(labels[t].sum()) for t in labels}}
    return {"presto": da(presto), "raw_bands": da(raw)}, labels, facts


def generated_inputs(work: Path):
    from eoembed.data import open_cube, sample

    root = sample(work / "sample", n=200, seed=0, size=32, progress=False)
    cube = open_cube(root)
    means = cube["bands"].mean(("y", "x")).compute()
    raw = means.stack(feature=("season", "band")).transpose("sample", "feature")
    raw = raw.drop_vars(["feature", "season", "band", "modality", "band_name"], errors="ignore")
    return {"raw_bands": raw}, root / "labels"


def compare_splits(embs: dict, labels, splits: dict, folds: int, modes=("ridge", "compat")) -> list[dict]:
    from eoembed.bench import evaluate

    rows = []
    for name, emb in embs.items():
        for mode in modes:
            for sname, kw in splits.items():
                t0 = time.perf_counter()
                r = evaluate(emb, labels, folds=folds, mode=mode, progress=False, **kw)
                sp = r.details["settings"]["split"]
                rows.append({"embedding": name, "mode": mode, "split": sname, "overall_q": r.overall_q,
                             "overall_mean_score": r.overall_acc,
                             "q": r.per_task["q_stat"].round(3).to_dict(),
                             "mean_score": r.per_task["mean_score"].round(4).to_dict(),
                             "test_fraction_mean": {t: v.get("test_fraction_mean") for t, v in
                                                    sp.get("per_task", {}).items()} or None,
                             "n_groups": {t: v.get("n_blocks", v.get("n_clusters")) for t, v in
                                          sp.get("per_task", {}).items()} or None,
                             "seconds": round(time.perf_counter() - t0, 2)})
                print(f"{name:10s} {mode:7s} {sname:18s} Q-bar {r.overall_q:7.2f}  mean score {r.overall_acc:.3f}  "
                      f"({rows[-1]['seconds']} s)", flush=True)
    return rows


def gaps(rows: list[dict]) -> list[dict]:
    out = []
    df = pd.DataFrame(rows)
    for (emb, mode), g in df.groupby(["embedding", "mode"], sort=False):
        base = g[g["split"] == "shuffle"].iloc[0]
        for _, r in g[g["split"] != "shuffle"].iterrows():
            out.append({"embedding": emb, "mode": mode, "split": r["split"],
                        "q_shuffle": base["overall_q"], "q_split": r["overall_q"],
                        "q_gap": base["overall_q"] - r["overall_q"],
                        "score_shuffle": base["overall_mean_score"], "score_split": r["overall_mean_score"],
                        "score_gap": base["overall_mean_score"] - r["overall_mean_score"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.environ.get("EOEMBED_SHARED",
                                                       str(Path(__file__).resolve().parents[1].parent / "shared")))
    ap.add_argument("--folds", type=int, default=40)
    ap.add_argument("--km", type=float, default=10.0, help="WorldCereal block size (km)")
    ap.add_argument("--sample-km", type=float, default=500.0, help="generated-sample block size (km)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the 2-thread ridge probe "
                    "spins ~10x the CPU time on a loaded 2-core machine)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_splits.json"))
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)   # a script: setting torch's threads here is its own choice
    t_start = time.perf_counter()
    res: dict = {"machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "platform": platform.platform(), "processor": platform.processor()},
                 "folds": a.folds, "metric": "neuco (F1 for the binary tasks, R^2 for regression)"}
    shared = Path(a.shared)
    weights = shared / "weights/presto/default_model.pt"
    if (shared / "data/worldcereal/test_public_extractions.parquet").is_file() and weights.is_file():
        embs, labels, facts = worldcereal_inputs(shared, weights)
        splits = {"shuffle": {}, f"spatial {a.km:g} km": {"split": "spatial", "split_km": a.km},
                  "spatial kmeans 20": {"split": "spatial"}}
        rows = compare_splits(embs, labels, splits, a.folds)
        res["worldcereal"] = {"facts": facts, "results": rows, "gaps": gaps(rows)}
    else:
        print(f"{shared} has no WorldCereal pixels / Presto weights: WorldCereal part skipped")
        res["worldcereal"] = None
    with tempfile.TemporaryDirectory() as tmp:
        embs, labels = generated_inputs(Path(tmp))
        splits = {"shuffle": {}, f"spatial {a.sample_km:g} km": {"split": "spatial", "split_km": a.sample_km},
                  "spatial kmeans 20": {"split": "spatial"}}
        rows = compare_splits(embs, labels, splits, a.folds)
    res["generated_sample"] = {"n": 200, "results": rows, "gaps": gaps(rows)}
    print(pd.DataFrame(res["generated_sample"]["gaps"] + (res["worldcereal"] or {"gaps": []})["gaps"])
          .round(3).to_string())
    res["seconds_total"] = round(time.perf_counter() - t_start, 1)
    Path(a.out).write_text(json.dumps(res, indent=2, default=float))
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
