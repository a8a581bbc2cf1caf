"""Matryoshka distillation on the generated sample: the prefix curve against PCA, random projection and the
unordered student.

Teacher: the training-free raw-band features of the generated sample (per season and band, spatial mean and std
of S1 / S2 L1C / S2 L2A: 216 features; eoembed.pipeline.raw_band_features); the student's input is the same
vector (inputs=None). ``--teacher presto``: Presto's 128-d embeddings of the same sample with its real weights
(../shared/weights/presto; the issue's "single FM" teacher) instead, same loss and evaluation, written to
bench_matryoshka_presto.json. Student: 128-d, prefixes 16/32/64/128 (eoembed.compress.distill); control: the same
student with only the 128 head (distill_unordered). Scores: eoembed.compress.prefix_scores (ridge probes,
TESSERA's chance-adjusted metric, 5 folds to stay under ~2 min) on the sample's 11 tasks. Loss: target
"standardized" (teacher features z-scored) + relational 1.0 (pairwise-cosine term per prefix), chosen on a
disjoint selection sample (SELECTION below); nothing is selected on this sample's labels (fixed epochs).
Baselines also include PCA of the z-scored teacher (pca_standardized), the linear counterpart of the target, and
PCA of the unit-length teacher rows (pca_spherical), the span a cosine loss is best served by.
Seed spread: at k=16 the Matryoshka and unordered students are also trained with ``--seeds - 1``
more seeds (same evaluation), so their k=16 difference can be read against the spread over seeds.
Writes benchmarks/results/bench_matryoshka.json (or ..._presto.json) and prints the table.

    .venv/bin/python benchmarks/bench_matryoshka.py [--n 300] [--size 32] [--epochs 60] [--teacher presto]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


SELECTION = ("target='standardized', relational=1.0 (prefix weights 1) were chosen on a DISJOINT generated sample "
             "(sample(seed=1), n=200; this benchmark reports on sample(seed=0)), 2 student seeds, criterion: the "
             "highest mean k=16 rel_score among variants whose k=16 beats PCA-16 and random projection. Candidates "
             "(mean rel_score over seeds 0, 1 on the selection sample): centred 0.73, standardized 0.82, "
             "standardized + relational 1 0.84, centred + relational 1 0.61, standardized + weights 4/2/1/1 0.82, "
             "standardized + weights 8/4/2/1 0.82, standardized + relational 1 + weights 4/2/1/1 0.78, centred + "
             "weights 8/4/2/1 0.69, standardized 150 epochs 0.80.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the k=16 spread (the first is --seed)")
    ap.add_argument("--target", choices=("centred", "standardized"), default="standardized",
                    help="distillation target (distill(target=...)); chosen on a disjoint selection sample, see doc")
    ap.add_argument("--relational", type=float, default=1.0, help="weight of the pairwise-cosine term")
    ap.add_argument("--prefix-weights", type=float, nargs="+", default=None)
    ap.add_argument("--teacher", choices=("raw_bands", "presto"), default="raw_bands",
                    help="raw_bands: the 216 raw-band features; presto: Presto's 128-d embeddings with its real "
                         "weights (--presto-weights), four seasons in one pass")
    ap.add_argument("--presto-weights", default=str(Path(__file__).resolve().parents[2] / "shared" / "weights"
                                                    / "presto" / "default_model.pt"))
    ap.add_argument("--out", default=None, help="default: results/bench_matryoshka.json (raw_bands) or "
                                                "results/bench_matryoshka_presto.json")
    args = ap.parse_args()
    if args.out is None:
        name = "bench_matryoshka.json" if args.teacher == "raw_bands" else "bench_matryoshka_presto.json"
        args.out = str(Path(__file__).parent / "results" / name)

    from eoembed.compress import distill, distill_unordered, prefix_scores
    from eoembed.data import open_cube, read_labels, sample
    from eoembed.pipeline import _flat, raw_band_features

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = sample(Path(tmp) / "sample", n=args.n, seed=0, size=args.size, progress=False)
        cube = open_cube(root).load()
        labels = read_labels(Path(root) / "labels")
        if args.teacher == "raw_bands":
            teacher = raw_band_features(cube)
        else:
            from eoembed.extract import extract, open_embeddings

            store = Path(tmp) / "emb.zarr"
            extract(cube, models=["presto"], out=store, weights={"presto": args.presto_weights}, size="full",
                    progress=False)
            teacher = _flat(open_embeddings(store)["presto"])
    t_data = time.perf_counter() - t0
    kw = dict(out_dim=128, hidden=512, epochs=args.epochs, seed=args.seed, progress=False, target=args.target,
              relational=args.relational)
    mkw = {"prefix_weights": args.prefix_weights} if args.prefix_weights else {}
    t0 = time.perf_counter()
    res = distill(teacher, prefixes=(16, 32, 64, 128), **kw, **mkw)
    t_mat = time.perf_counter() - t0
    t0 = time.perf_counter()
    uno = distill_unordered(teacher, **kw)
    t_uno = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = prefix_scores(res, labels, baselines=("pca", "pca_standardized", "pca_spherical", "random", "unordered",
                                              "teacher"),
                       unordered=uno,
                       folds=args.folds, seed=args.seed)
    t_eval = time.perf_counter() - t0
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    from eoembed.bench import evaluate
    t0 = time.perf_counter()
    spread: dict[str, list[dict]] = {"matryoshka": [], "unordered": []}
    for s in range(args.seed, args.seed + args.seeds):
        for name, r in (("matryoshka", res), ("unordered", uno)):
            if s != args.seed:
                kws = {**kw, "seed": s}
                r = distill(teacher, prefixes=(16, 32, 64, 128), **kws, **mkw) if name == "matryoshka" else \
                    distill_unordered(teacher, **kws)
            e = evaluate(r.prefix(16), labels, mode="ridge", metric="tessera", folds=args.folds, progress=False)
            spread[name].append({"seed": s, "q": float(e.overall_q), "score": float(e.overall_acc)})
    t_spread = time.perf_counter() - t0
    for name, v in spread.items():
        sc = [x["score"] for x in v]
        print(f"k=16 {name}: score over seeds {np.round(sc, 3).tolist()} (mean {np.mean(sc):.3f}, sd "
              f"{np.std(sc, ddof=1):.3f})")
    last = res.history.iloc[-1]
    at16 = df[df.k == 16].set_index("method")
    out = {
        "what": __doc__.splitlines()[0],
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads (2-core shared machine)",
        "n": args.n, "size": args.size, "teacher_dim": int(teacher.sizes["feature"]),
        "teacher": ("raw_band_features (mean+std per season and band)" if args.teacher == "raw_bands" else
                    f"presto embeddings, real weights ({Path(args.presto_weights).name}), all four seasons in one pass"), "epochs": args.epochs, "seed": args.seed,
        "eval": {"mode": "ridge", "metric": "tessera", "folds": args.folds},
        "selection": df.attrs["selection"],
        "loss": {"target": args.target, "relational": args.relational, "prefix_weights": args.prefix_weights},
        "loss_selection": SELECTION,
        "load_avg": os.getloadavg(),
        "distill_cosine_last_epoch": {int(k): float(last[f"cos/{k}"]) for k in res.prefixes},
        "unordered_cosine_last_epoch": float(uno.history.iloc[-1]["cos/128"]),
        "table": json.loads(df.to_json(orient="records")),
        "k16": {"matryoshka_rel_score": float(at16.loc["matryoshka", "rel_score"]),
                "pca_standardized_score": float(at16.loc["pca_standardized", "score"]),
                "goal_met": bool(at16.loc["matryoshka", "rel_score"] >= 0.85 and all(
                    at16.loc["matryoshka", "score"] > at16.loc[b, "score"] for b in ("pca", "random", "unordered"))),
                "matryoshka_score": float(at16.loc["matryoshka", "score"]),
                "pca_score": float(at16.loc["pca", "score"]), "random_score": float(at16.loc["random", "score"]),
                "unordered_score": float(at16.loc["unordered", "score"]),
                "matryoshka_q": float(at16.loc["matryoshka", "q"]), "pca_q": float(at16.loc["pca", "q"]),
                "random_q": float(at16.loc["random", "q"]), "unordered_q": float(at16.loc["unordered", "q"])},
        "k16_seed_spread": {name: {"runs": v, "score_mean": float(np.mean([x["score"] for x in v])),
                                   "score_sd": float(np.std([x["score"] for x in v], ddof=1)),
                                   "q_mean": float(np.mean([x["q"] for x in v])),
                                   "q_sd": float(np.std([x["q"] for x in v], ddof=1))}
                            for name, v in spread.items()},
        "time_s": {"data": t_data, "distill": t_mat, "unordered": t_uno, "evaluate": t_eval, "seed_spread": t_spread},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("k16", "distill_cosine_last_epoch", "time_s")}, indent=1))


if __name__ == "__main__":
    main()
