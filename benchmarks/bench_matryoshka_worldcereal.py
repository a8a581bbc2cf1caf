"""Matryoshka distillation on WorldCereal pixels: the prefix curve of a student of Presto against PCA, random
projection and the unordered student, scored on the labelled WorldCereal pixels.

Teacher: Presto (real weights, ../shared/weights/presto) per-pixel embeddings (128-d) of the 10,000 pixels of the
WorldCereal cube and of the 500 labelled pixel extractions. Student input: the same pixels' monthly series
(15 bands common to both files: S1 VV/VH, 9 S2 bands, temperature, precipitation, elevation, slope), rolled to
calendar months, each band z-scored over all pixels, missing steps set to 0 plus one S2-availability flag per
month (192 features); with ``--student-input teacher`` the student reads the Presto vectors instead. Distillation uses no labels (cube + labelled pixels' inputs). Students: 128-d, prefixes
16/32/64/128 (eoembed.compress.distill), control: the same student with only the 128 head (distill_unordered),
``--seeds`` seeds each. Baselines at the same k: PCA and a Gaussian random projection of the centred teacher,
fitted on the same unlabelled pixels.

Score: crop type (``sampling_label``; classes with >= 10 pixels: 472 pixels, 5 classes) with a fixed
logistic-regression probe (C=1 on z-scored features; nothing is selected), balanced accuracy over 10 stratified
70/30 splits, reported chance-adjusted: (bacc - 1/5) / (1 - 1/5). Writes
benchmarks/results/bench_matryoshka_worldcereal.json and prints the table.

Loss options (``--target``, ``--relational``: distill's) default to the plain centred cosine loss;
bench_matryoshka_worldcereal_standardized.json uses the variant chosen on the generated selection sample
(standardized + relational 1, see bench_matryoshka.py), chosen without WorldCereal labels. ``--cache`` keeps the
Presto embeddings (~3 min on 2 cores) in an npz file between runs.

    .venv/bin/python benchmarks/bench_matryoshka_worldcereal.py [--shared ../shared] [--epochs 40] [--seeds 3]
        [--student-input teacher] [--target standardized --relational 1] [--cache /tmp/wc_presto.npz]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

KS = (16, 32, 64, 128)


def inputs(series: dict, bands: list[str], start_month: np.ndarray) -> np.ndarray:
    """(N, 12, B) series on ``bands``, rolled so step 0 is January, NaN kept (filled after z-scoring)."""
    idx = [series["bands"].index(b) for b in bands]
    v = series["values"][:, :, idx]
    out = np.empty_like(v)
    for m in np.unique(start_month):
        rows = start_month == m
        out[rows] = np.roll(v[rows], int(m), axis=1)  # step t is month (m + t) % 12
    return out


def probe(x: np.ndarray, y: np.ndarray, splits: list) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    n_cls = len(np.unique(y))
    scores = []
    for tr, te in splits:
        sc = StandardScaler().fit(x[tr])
        clf = LogisticRegression(C=1.0, max_iter=3000).fit(sc.transform(x[tr]), y[tr])
        b = balanced_accuracy_score(y[te], clf.predict(sc.transform(x[te])))
        scores.append((b - 1 / n_cls) / (1 - 1 / n_cls))
    return float(np.mean(scores))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("EOEMBED_SHARED", str(Path(__file__).parents[1].parent / "shared")))
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--student-input", choices=("series", "teacher"), default="series",
                    help="the student's input: the pixel series (default) or the Presto vectors themselves")
    ap.add_argument("--target", choices=("centred", "standardized"), default="centred",
                    help="distill(target=...); the generated-sample selection chose standardized (bench_matryoshka)")
    ap.add_argument("--relational", type=float, default=0.0, help="distill(relational=...)")
    ap.add_argument("--random-draws", type=int, default=10, help="Gaussian projections scored (spread of the "
                    "random baseline; the first is the seed-0 draw)")
    ap.add_argument("--baselines-only", action="store_true", help="score the baselines only (no distillation)")
    ap.add_argument("--cache", default=None, help="npz file caching the Presto embeddings (written when absent)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_matryoshka_worldcereal.json"))
    a = ap.parse_args()
    from sklearn.model_selection import StratifiedShuffleSplit

    from eoembed.compress import distill, distill_unordered
    from eoembed.models import presto_embed_pixels
    from eoembed.product.worldcereal import pixel_series, worldcereal_series

    t0 = time.perf_counter()
    wc = Path(a.shared) / "data" / "worldcereal"
    weights = Path(a.shared) / "weights" / "presto" / "default_model.pt"
    cube = worldcereal_series(wc / "worldcereal_preprocessed_inputs.nc")
    px = pixel_series(wc / "test_public_extractions.parquet")
    t = time.perf_counter()
    if a.cache and Path(a.cache).exists():
        with np.load(a.cache) as zc:
            t_cube, t_px = zc["t_cube"], zc["t_px"]
    else:
        t_cube = presto_embed_pixels(cube["values"], cube["bands"], cube["start_month"], cube["latlon"],
                                     weights=weights, progress=False)
        t_px = presto_embed_pixels(px["values"], px["bands"], px["months"], px["latlon"], weights=weights,
                                   progress=False)
        if a.cache:
            np.savez(a.cache, t_cube=t_cube, t_px=t_px)
    embed_s = time.perf_counter() - t
    bands = [b for b in cube["bands"] if b in px["bands"]]
    x = np.concatenate([inputs(cube, bands, np.full(len(t_cube), cube["start_month"])),
                        inputs(px, bands, px["months"])])
    s2 = [j for j, b in enumerate(bands) if b.startswith("B")]
    avail = np.isfinite(x[:, :, s2]).all(-1).astype(np.float32)
    mu, sd = np.nanmean(x, axis=(0, 1)), np.nanstd(x, axis=(0, 1))
    z = np.nan_to_num((x - mu) / np.where(sd > 0, sd, 1), nan=0.0)
    feats = np.concatenate([z.reshape(len(z), -1), avail], 1).astype(np.float32)
    teacher = np.concatenate([t_cube, t_px]).astype(np.float32)
    keep = np.isfinite(teacher).all(1)
    n_cube = len(t_cube)
    ids = np.array([f"cube{i}" for i in range(n_cube)] + [f"px{i}" for i in px["ids"]])
    import xarray as xr
    T = xr.DataArray(teacher[keep], dims=("sample", "feature"), coords={"sample": ids[keep]})
    X = xr.DataArray(feats[keep], dims=("sample", "feature"), coords={"sample": ids[keep]})

    lab = px["labels"]["sampling_label"].astype(str).to_numpy()
    counts = {c: int((lab == c).sum()) for c in np.unique(lab)}
    use = np.array([counts[c] >= 10 for c in lab]) & np.isfinite(t_px).all(1)
    y = lab[use]
    px_ids = np.array([f"px{i}" for i in px["ids"]])[use]
    splits = list(StratifiedShuffleSplit(n_splits=10, test_size=0.3, random_state=0).split(np.zeros(len(y)), y))

    rows = [{"method": "teacher (Presto)", "k": 128, "seed": None, "score": probe(t_px[use], y, splits)}]
    tc = T.values - T.values.mean(0)
    from sklearn.decomposition import PCA
    pca = PCA(n_components=max(KS), random_state=0).fit(tc)
    lab_c = t_px[use] - T.values.mean(0)
    pcs = pca.transform(lab_c)
    tsd = np.where(tc.std(0) > 0, tc.std(0), 1.0)
    pcs_z = PCA(n_components=max(KS), random_state=0).fit(tc / tsd).transform(lab_c / tsd)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(tc.shape[1], max(KS))).astype(np.float32)
    rp = lab_c @ w
    for k in KS:
        rows.append({"method": "pca", "k": k, "seed": None, "score": probe(pcs[:, :k], y, splits)})
        rows.append({"method": "random", "k": k, "seed": None, "score": probe(rp[:, :k], y, splits)})
        rows.append({"method": "pca_standardized", "k": k, "seed": None, "score": probe(pcs_z[:, :k], y, splits)})
    for d in range(1, a.random_draws):  # more Gaussian draws: the spread of the random-projection baseline
        wd = np.random.default_rng(d).normal(size=(tc.shape[1], max(KS))).astype(np.float32)
        for k in KS:
            rows.append({"method": "random", "k": k, "seed": d, "score": probe((lab_c @ wd)[:, :k], y, splits)})
    train_s = {}
    for seed in range(0 if a.baselines_only else a.seeds):
        for name, fn in (("matryoshka", distill), ("unordered", distill_unordered)):
            t = time.perf_counter()
            kw = {"prefixes": KS} if name == "matryoshka" else {}
            res = fn(T, X if a.student_input == "series" else None, out_dim=128, epochs=a.epochs, batch_size=256,
                     seed=seed, progress=False, target=a.target, relational=a.relational, **kw)
            train_s[f"{name}/{seed}"] = time.perf_counter() - t
            e = res.embeddings.sel(sample=px_ids).values
            for k in KS:
                rows.append({"method": name, "k": k, "seed": seed, "score": probe(e[:, :k], y, splits)})
    import pandas as pd
    df = pd.DataFrame(rows)
    summ = df.groupby(["method", "k"])["score"].agg(["mean", "std", "count"]).reset_index()
    if a.baselines_only:
        out = Path(a.out)
        out.write_text(json.dumps({"what": "baselines only (bench_matryoshka_worldcereal.py --baselines-only)",
                                   "random_draws": a.random_draws, "n_labelled": int(use.sum()),
                                   "summary": summ.to_dict(orient="records"), "runs": df.to_dict(orient="records"),
                                   "load_avg_at_end": os.getloadavg(), "total_s": time.perf_counter() - t0},
                                  indent=1, default=float))
        print(summ.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return
    m128 = summ[(summ.method == "matryoshka") & (summ.k == 128)]["mean"].iloc[0]
    summ["rel_to_matryoshka_128"] = summ["mean"] / m128
    at16 = summ[summ.k == 16].set_index("method")["mean"]
    goals = {"k16_keeps_85pct_of_k128": bool(at16["matryoshka"] / m128 >= 0.85),
             "k16_rel": float(at16["matryoshka"] / m128),
             "k16_beats": {b: bool(at16["matryoshka"] > at16[b]) for b in ("pca", "random", "unordered")}}
    result = {"what": __doc__.splitlines()[0], "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} "
              "torch threads (this project's 2-core machine, no GPU)", "n_unlabelled": int(keep.sum()),
              "n_labelled": int(use.sum()), "classes": sorted(set(y.tolist())), "bands": bands,
              "epochs": a.epochs, "student_input": a.student_input, "target": a.target, "relational": a.relational,
              "load_avg_at_end": os.getloadavg(), "seeds": a.seeds, "presto_embed_s": embed_s, "train_s": train_s,
              "probe": "LogisticRegression(C=1) on z-scored features, 10 stratified 70/30 splits, chance-adjusted "
                       "balanced accuracy; nothing selected", "summary": summ.to_dict(orient="records"),
              "runs": df.to_dict(orient="records"), "goals": goals, "total_s": time.perf_counter() - t0}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    print(summ.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(json.dumps(goals))
    print(f"wrote {out} ({result['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
