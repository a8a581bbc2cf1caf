"""eoembed's compat mode vs NeuCo-Bench itself: same CSV, same label folder, same YAML config.

Runs NeuCo-Bench's own ``evaluate`` (source from --neuco-src or $NEUCO_BENCH_SRC, in a subprocess; scikit-optimize,
needed only by its SVM probe, is stubbed when absent) with --seeds global seeds (its splits stay random_state 42;
the seed moves only torch's stream: probe init and batch order), and eoembed's ``evaluate`` with the same seeds.
Checks that both use the same test ids in every fold of every task (NeuCo-Bench's own loaders and grouping vs
eoembed's ``_splits``), and reports per task the Q of each side (mean and std over seeds) and their difference.

Speed, side by side in the same run (``--speed-n`` x ``--speed-dim``, default 2,000 x 1,024, 5 tasks, K=40, same CSV,
label folder and config): NeuCo-Bench's ``benchmark/main.py`` as a whole process (timed from outside) and its
``evaluate`` inside that process (CSV read included), against ``eoembed bench`` as a whole process and eoembed's
``evaluate`` in-process (CSV read included, imports done and the numba kernel compiled/cached, best of --repeats).
Both ratios are reported, on wall time and on CPU time (process_time in-process, getrusage of the children for whole
processes: less inflated by other jobs on a shared machine), with a CPU-time breakdown of eoembed's ``evaluate`` by
stage on one thread (CSV parse, labels, standardisation, splits, permutations, kernel, metrics) and the wall time it
projects on two idle cores. Without NeuCo-Bench's source (--neuco-src / $NEUCO_BENCH_SRC) the benchmark says so and
stops. Writes benchmarks/results/neuco_parity.json.
Usage: NEUCO_BENCH_SRC=/path/to/NeuCo-Bench python benchmarks/bench_neuco_parity.py [--n 600] [--dim 64] [--seeds 3]
       [--speed-n 2000] [--speed-dim 1024] [--skip-parity] [--skip-speed]
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

#: NeuCo-Bench's own benchmark/main.py as a whole process; its evaluate() is timed from inside.
MAIN_RUNNER = NEUCO_PRELUDE + textwrap.dedent("""
    import runpy, sys, time
    from pathlib import Path
    src = Path(sys.argv[1])
    sys.path.insert(0, str(src / "benchmark"))
    import evaluation.evaluation as ev
    real = ev.evaluate
    def timed(*a, **k):
        t0, c0 = time.perf_counter(), time.process_time()
        out = real(*a, **k)
        print("CPU", time.process_time() - c0, flush=True)
        print("SECONDS", time.perf_counter() - t0, flush=True)
        return out
    ev.evaluate = timed
    sys.argv = [str(src / "benchmark" / "main.py")] + sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children."""
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def write_inputs(work: Path, n: int, dim: int, folds: int, epochs: int):
    """The CSV, label folder and YAML config both sides read."""
    import yaml
    X, ids, lab = synthetic(n, dim)
    rng = np.random.default_rng(1)
    emb = pd.DataFrame(X, columns=[str(i) for i in range(dim)])
    emb.insert(0, "id", ids)
    emb.iloc[rng.permutation(len(emb))].to_csv(work / "emb.csv", index=False)
    (work / "labels").mkdir()
    for t, kind in lab.attrs["task_types"].items():            # each file lists its ids in its own order
        col = lab[t].iloc[rng.permutation(len(lab))]
        col = col.astype(int) if kind == "classification" else col
        col.rename("label").reset_index().to_csv(work / "labels" / f"{t}__{kind}.csv", index=False)
    cfg = {"k_folds": folds, "probe_type": "linear",
           "probe_params": {"batch_size": 64, "epochs": epochs, "learning_rate": 0.001, "device": "cpu"},
           "embedding_dim": None, "standardize_embeddings": True, "normalize_labels": True, "enable_plots": False,
           "update_leaderboard": False, "store_probes": False, "output_fold_results": True, "task_filter": None}
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return lab


def stages_cpu(work: Path, repeats: int = 3) -> dict:
    """CPU seconds of each stage of one in-process ``evaluate`` with numba on one thread (so CPU time is the work,
    whatever else runs on the machine); best of ``repeats``. Stages are timed with time.thread_time in the thread
    that runs them (the kernel runs in eoembed's worker thread while the main thread draws the next batch orders
    and scores the last epoch), the total with time.process_time. Projected wall time on c idle cores:
    serial + (parallel + overlapped) / c, with parallel = kernel + CSV parse (numba threads), overlapped =
    permutations + epoch metrics (main thread, during the kernel) and serial = the rest."""
    import collections

    import numba

    import eoembed.bench._csv as csv_mod
    import eoembed.bench.core as core
    import eoembed.bench.engine as engine
    import eoembed.bench.io as io

    acc: collections.Counter = collections.Counter()
    saved = []

    def timed(mod, name, key):
        f = getattr(mod, name)
        saved.append((mod, name, f))

        def g(*a, **k):
            c0 = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                acc[key] += time.thread_time() - c0
        setattr(mod, name, g)

    timed(csv_mod, "_parse", "csv_parse")
    timed(io, "_read_csv_fast", "csv_read_total")
    timed(io, "read_labels_any", "labels")
    timed(io, "_standardise", "standardise")
    timed(core, "prepare", "prepare_total")
    timed(core, "_splits", "splits")
    timed(engine, "epoch_metric", "epoch_metrics")
    timed(engine.ProbeDraws, "permutations", "permutations")
    kernel = engine._kernel()
    saved.append((engine, "_kernel", engine._kernel))

    def k(*a):
        c0 = time.thread_time()
        try:
            return kernel(*a)
        finally:
            acc["kernel"] += time.thread_time() - c0
    engine._kernel = lambda: k
    old_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    runs = []
    try:
        for _ in range(repeats + 1):                               # the first run: warm-up
            acc.clear()
            c0 = time.process_time()
            evaluate(work / "emb.csv", work / "labels", config=work / "cfg.yaml", device="cpu", progress=False)
            acc["evaluate_total"] = time.process_time() - c0
            runs.append(dict(acc))
    finally:
        numba.set_num_threads(old_threads)
        for mod, name, f in saved:
            setattr(mod, name, f)
    best = min(runs[1:], key=lambda r: r["evaluate_total"])
    best["parallel"] = best["kernel"] + best["csv_parse"]
    best["overlapped"] = best["permutations"] + best["epoch_metrics"]
    best["serial"] = best["evaluate_total"] - best["parallel"] - best["overlapped"]
    best["projected_wall_2_idle_cores"] = best["serial"] + (best["parallel"] + best["overlapped"]) / 2
    print("CPU seconds per stage (one thread, best of %d): " % repeats
          + ", ".join(f"{key} {v:.3f}" for key, v in sorted(best.items(), key=lambda kv: -kv[1])), flush=True)
    return {key: round(v, 4) for key, v in best.items()}


def speed(src: str, n: int, dim: int, folds: int, epochs: int, repeats: int) -> dict:
    """Both ratios, NeuCo-Bench's code and eoembed side by side on the same inputs."""
    work = Path(tempfile.mkdtemp(prefix="neuco_speed_"))
    write_inputs(work, n, dim, folds, epochs)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    evaluate(work / "emb.csv", work / "labels", config=work / "cfg.yaml", folds=2, epochs=1, device="cpu",
             progress=False)                                       # imports done, kernel compiled / loaded
    t_neuco_in, t_neuco_whole, t_in, t_whole, loads = [], [], [], [], []
    cpu_in, cpu_neuco_in, cpu_neuco_whole, cpu_whole = [], [], [], []
    for r in range(repeats):
        loads.append(os.getloadavg()[0])
        out = work / f"neuco_{r}"
        ch0 = _children_cpu()
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", MAIN_RUNNER, src, "--submission_file", str(work / "emb.csv"),
                               "--annotation_path", str(work / "labels"), "--config", str(work / "cfg.yaml"),
                               "--output_dir", str(out), "--phase", "p", "--method_name", "neuco"],
                              capture_output=True, text=True)
        t_neuco_whole.append(time.perf_counter() - t0)
        cpu_neuco_whole.append(_children_cpu() - ch0)
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
        t_neuco_in.append(float(proc.stdout.split("SECONDS")[-1].split()[0]))
        cpu_neuco_in.append(float(proc.stdout.split("CPU")[-1].split()[0]))
        ch0 = _children_cpu()
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "eoembed.cli", "bench", str(work / "emb.csv"), "--labels",
                               str(work / "labels"), "--out", str(work / f"eoembed_{r}"), "--config",
                               str(work / "cfg.yaml"), "--device", "cpu", "--no-progress"],
                              capture_output=True, text=True, env=env)
        t_whole.append(time.perf_counter() - t0)
        cpu_whole.append(_children_cpu() - ch0)
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
        for _ in range(3):
            c0, t0 = time.process_time(), time.perf_counter()
            evaluate(work / "emb.csv", work / "labels", config=work / "cfg.yaml", device="cpu", progress=False)
            t_in.append(time.perf_counter() - t0)
            cpu_in.append(time.process_time() - c0)
        loads.append(os.getloadavg()[0])
        print(f"speed run {r}: NeuCo-Bench main.py {t_neuco_whole[-1]:.1f} s (its evaluate {t_neuco_in[-1]:.1f} s); "
              f"eoembed bench {t_whole[-1]:.2f} s, evaluate {min(t_in[-3:]):.2f} s", flush=True)
    out = {"n": n, "dim": dim, "tasks": 5, "folds": folds, "epochs": epochs,
           "seconds_neuco_main_py": t_neuco_whole, "seconds_neuco_evaluate": t_neuco_in,
           "seconds_eoembed_bench_cli": t_whole, "seconds_eoembed_evaluate": t_in,
           "ratio_in_process": min(t_neuco_in) / min(t_in), "ratio_whole_process": min(t_neuco_whole) / min(t_whole),
           "ratio_in_process_median": float(np.median(t_neuco_in) / np.median(t_in)),
           "ratio_whole_process_median": float(np.median(t_neuco_whole) / np.median(t_whole)),
           "loadavg_1min": loads,
           # CPU seconds (user + system) of the same runs: what the machine's other jobs do not inflate as much
           "cpu_seconds_neuco_main_py": cpu_neuco_whole, "cpu_seconds_eoembed_bench_cli": cpu_whole,
           "cpu_seconds_eoembed_evaluate": cpu_in, "cpu_seconds_neuco_evaluate": cpu_neuco_in,
           "ratio_in_process_cpu": min(cpu_neuco_in) / min(cpu_in),
           "ratio_whole_process_cpu": min(cpu_neuco_whole) / min(cpu_whole),
           "eoembed_evaluate_stages_cpu_one_thread": stages_cpu(work)}
    print(f"in-process: NeuCo-Bench evaluate {min(t_neuco_in):.1f} s vs eoembed evaluate {min(t_in):.2f} s = "
          f"{out['ratio_in_process']:.0f}x; whole process: main.py {min(t_neuco_whole):.1f} s vs eoembed bench "
          f"{min(t_whole):.2f} s = {out['ratio_whole_process']:.1f}x (best of {repeats}; 1-min load {loads}); "
          f"CPU seconds: in-process {min(cpu_neuco_in):.1f} vs {min(cpu_in):.2f} = {out['ratio_in_process_cpu']:.0f}x, "
          f"whole process {min(cpu_neuco_whole):.1f} vs {min(cpu_whole):.2f} = {out['ratio_whole_process_cpu']:.1f}x")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neuco-src", default=os.environ.get("NEUCO_BENCH_SRC"))
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--folds", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--speed-n", type=int, default=2000)
    ap.add_argument("--speed-dim", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2, help="side-by-side speed runs (best kept)")
    ap.add_argument("--skip-parity", action="store_true", help="only the speed ratios")
    ap.add_argument("--skip-speed", action="store_true", help="only the score parity")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "neuco_parity.json"))
    args = ap.parse_args()
    if not args.neuco_src or not (Path(args.neuco_src) / "benchmark" / "main.py").is_file():
        print("SKIPPED: NeuCo-Bench's source is needed to run it side by side; give --neuco-src or NEUCO_BENCH_SRC "
              "(a folder holding benchmark/main.py, e.g. a checkout of github.com/embed2scale/NeuCo-Bench).")
        return
    path = Path(args.out)
    if not args.skip_speed:
        sp = speed(args.neuco_src, args.speed_n, args.speed_dim, args.folds, args.epochs, args.repeats)
        sp["machine"] = f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), no GPU"
        result = json.loads(path.read_text()) if path.is_file() else {}  # read now: a parity run may have written
        result["speed"] = sp
        path.write_text(json.dumps(result, indent=2))
    if args.skip_parity:
        print(f"wrote {path}")
        return
    work = Path(tempfile.mkdtemp(prefix="neuco_parity_"))
    lab = write_inputs(work, args.n, args.dim, args.folds, args.epochs)

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
        res = evaluate(work / "emb.csv", work / "labels", config=work / "cfg.yaml", seed=s, progress=False,
                       device="cpu")
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
    result = json.loads(path.read_text()) if path.is_file() else {}      # re-read: a speed run may have written
    result.update({"n": args.n, "dim": args.dim, "folds": args.folds, "epochs": args.epochs, "seeds": seeds,
                   "same_splits": bool(same_splits), "tasks": table.reset_index().to_dict(orient="records"),
                   "seconds_neuco_per_run": t_theirs, "seconds_eoembed_per_run": t_mine,
                   "neuco_commit": "a89ba06", "cpu_count": os.cpu_count(), "platform": platform.platform()})
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
