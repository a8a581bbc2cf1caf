"""eoembed's compat mode vs NeuCo-Bench itself: same CSV, same label folder, same YAML config.

Runs NeuCo-Bench's own ``evaluate`` (source from --neuco-src or $NEUCO_BENCH_SRC, in a subprocess; scikit-optimize,
needed only by its SVM probe, is stubbed when absent) with --seeds global seeds (its splits stay random_state 42;
the seed moves only torch's stream: probe init and batch order), and eoembed's ``evaluate`` with the same seeds.
Checks that both use the same test ids in every fold of every task (NeuCo-Bench's own loaders and grouping vs
eoembed's ``_splits``), and reports per task the Q of each side (mean and std over seeds) and their difference.
Writes benchmarks/results/neuco_parity.json.
Usage: NEUCO_BENCH_SRC=/path/to/NeuCo-Bench python benchmarks/bench_neuco_parity.py [--n 600] [--dim 64] [--seeds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_eval import synthetic  # noqa: E402
from neuco_reference import NEUCO_PRELUDE  # noqa: E402

from eoembed.bench import evaluate  # noqa: E402
from eoembed.bench.core import _splits  # noqa: E402
from eoembed.bench.io import prepare  # noqa: E402

RUNNER = NEUCO_PRELUDE + textwrap.dedent("""
    import json, sys, time, types
    from pathlib import Path
    src, emb, labels, cfg_path, out, seed, splits_out = sys.argv[1:8]
    sys.path.insert(0, str(Path(src) / "benchmark"))
    import yaml
    from sklearn.model_selection import ShuffleSplit
    import evaluation.evaluation as ev
    from data.embeddings import load_submission
    from data.labels import get_annotations
    from evaluation.config import check_config
    cfg = yaml.safe_load(Path(cfg_path).read_text())
    check_config(cfg)
    if splits_out != "-":  # the test ids of every fold, grouped exactly as NeuCo-Bench's evaluate() does
        ann = get_annotations(Path(labels))
        sub, _ = load_submission(Path(emb), set(ann["id"]))
        merged = ann.merge(sub, on="id").dropna(subset=["embedding"])
        sp = {t: [g["id"].iloc[te].tolist() for _, te in
                  ShuffleSplit(n_splits=cfg["k_folds"], test_size=0.1, random_state=42).split(g)]
              for t, g in merged.groupby("task_name")}
        Path(splits_out).write_text(json.dumps(sp))
    orig = ev.fix_all_seeds
    ev.fix_all_seeds = lambda seed=42: orig(seed=int(sys.argv[6]))
    t0 = time.perf_counter()
    ev.evaluate(submission_file=Path(emb), annotation_path=Path(labels), method_name="neuco", output_dir=Path(out),
                phase="p", config=cfg)
    print("SECONDS", time.perf_counter() - t0)
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neuco-src", default=os.environ.get("NEUCO_BENCH_SRC"))
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--folds", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "neuco_parity.json"))
    args = ap.parse_args()
    if not args.neuco_src or not (Path(args.neuco_src) / "benchmark" / "main.py").is_file():
        sys.exit("give NeuCo-Bench's source with --neuco-src or NEUCO_BENCH_SRC (a folder holding benchmark/main.py)")

    X, ids, lab = synthetic(args.n, args.dim)
    rng = np.random.default_rng(1)
    work = Path(tempfile.mkdtemp(prefix="neuco_parity_"))
    emb = pd.DataFrame(X, columns=[str(i) for i in range(args.dim)])
    emb.insert(0, "id", ids)
    emb.iloc[rng.permutation(len(emb))].to_csv(work / "emb.csv", index=False)
    (work / "labels").mkdir()
    for t, kind in lab.attrs["task_types"].items():            # each file lists its ids in its own order
        col = lab[t].iloc[rng.permutation(len(lab))]
        col = col.astype(int) if kind == "classification" else col
        col.rename("label").reset_index().to_csv(work / "labels" / f"{t}__{kind}.csv", index=False)
    import yaml
    cfg = {"k_folds": args.folds, "probe_type": "linear",
           "probe_params": {"batch_size": 64, "epochs": args.epochs, "learning_rate": 0.001, "device": "cpu"},
           "embedding_dim": None, "standardize_embeddings": True, "normalize_labels": True, "enable_plots": False,
           "update_leaderboard": False, "store_probes": False, "output_fold_results": True, "task_filter": None}
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    seeds = [42] + list(range(1, args.seeds))
    theirs, mine, t_theirs, t_mine = {}, {}, [], []
    for s in seeds:
        out = work / f"neuco_{s}"
        proc = subprocess.run([sys.executable, "-c", RUNNER, args.neuco_src, str(work / "emb.csv"),
                               str(work / "labels"), str(work / "cfg.yaml"), str(out), str(s),
                               str(work / "splits.json") if s == 42 else "-"], capture_output=True, text=True)
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
        t_theirs.append(float(proc.stdout.split("SECONDS")[-1]))
        (run,) = (out / "p").iterdir()
        theirs[s] = {t: json.loads((run / t / f"{t}_result.json").read_text())["q_stat"] for t in lab.columns}
        t0 = time.perf_counter()
        res = evaluate(work / "emb.csv", work / "labels", config=work / "cfg.yaml", seed=s, progress=False)
        t_mine.append(time.perf_counter() - t0)
        mine[s] = res.per_task["q_stat"].to_dict()

    ref = json.loads((work / "splits.json").read_text())
    prep = prepare(work / "emb.csv", work / "labels")
    sp = _splits(prep, args.folds, 42)
    same_splits = all([prep.ids[te].tolist() for _, te in sp[t]] == ref[t] for t in prep.tasks) \
        and sorted(ref) == sorted(prep.tasks)
    rows = []
    for t in sorted(lab.columns):
        a = np.array([theirs[s][t] for s in seeds])
        b = np.array([mine[s][t] for s in seeds])
        rows.append({"task": t, "q_neuco_mean": a.mean(), "q_neuco_seed_std": a.std(ddof=1) if len(a) > 1 else None,
                     "q_eoembed_mean": b.mean(), "q_eoembed_seed_std": b.std(ddof=1) if len(b) > 1 else None,
                     "q_diff_of_means": b.mean() - a.mean(),
                     # standard error of that difference from the seed spreads of both sides
                     "q_diff_se": (float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
                                   if len(a) > 1 else None),
                     "q_neuco_seed42": theirs[42][t],
                     "q_eoembed_seed42": mine[42][t]})
    table = pd.DataFrame(rows).set_index("task")
    print(f"same test ids in every fold of every task: {same_splits}")
    print(table.round(3).to_string())
    print(f"NeuCo-Bench {np.mean(t_theirs):.1f} s per run, eoembed {np.mean(t_mine):.2f} s per run")
    result = {"n": args.n, "dim": args.dim, "folds": args.folds, "epochs": args.epochs, "seeds": seeds,
              "same_splits": bool(same_splits), "tasks": table.reset_index().to_dict(orient="records"),
              "seconds_neuco_per_run": t_theirs, "seconds_eoembed_per_run": t_mine,
              "neuco_commit": "a89ba06", "cpu_count": os.cpu_count(), "platform": platform.platform()}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
