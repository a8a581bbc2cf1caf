"""The device check: every CUDA path of eoembed in one short run, and issue 13's GPU target, ready for a GPU session.

No GPU has been lent to this project yet, so this script is prepared and smoke-tested on CPU (``--device cpu
--quick``, tests/test_bench_gpu.py) and waits for a session that has one. On the device machine (Python 3.12 with
torch, numba, xarray, scikit-learn, ... but no zarr, torchgeo or terratorch; it cannot reach the network) it
needs only zarr's wheels, carried in ``.whl/`` (see benchmarks/README.md), and uses no model that needs torchgeo.

Sections (each timed; an error is recorded and the next section runs):
- ``eval``: compat ``evaluate`` on 5,000 x 1,024 synthetic embeddings, 11 tasks x 40 folds x 10 epochs (issue 13:
  under 1 s on a GPU): a warm-up, then ``--repeats`` timed runs on the device, and one run of the CPU engine on the
  same data: fold scores and per-task Q compared.
- ``svm``: the SVM probe's Gram matrix on the device vs CPU, and a small SVM evaluation on both (fold scores).
- ``extract``: Presto (``--presto-weights``, else random) on a generated sample, on the device and on CPU:
  largest difference of the embeddings; bf16 on the device beside them.
- ``compress``: the fusion compressor on those embeddings, float32 on the device and on CPU (validation MSE per
  epoch compared) and bf16 on the device.
- ``distill``: a Matryoshka student on the device, float32 and bf16.
- ``pixel``: Barlow Twins pretraining steps of the tiny pixel encoder and bucket encoding, on the device and CPU.
- ``state``: torch's global numeric state (float32 matmul precision, TF32 switches, default dtype, threads)
  before and after all of the above: eoembed must leave it as it found it.

Writes ``--out`` (default benchmarks/results/bench_gpu.json) and prints a summary. Device run, from the repository
root: ``python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:.
python3 benchmarks/bench_gpu.py --out $OUT/bench_gpu.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _synthetic import TASKS, eleven_tasks as synthetic  # noqa: E402


def torch_state() -> dict:
    import torch

    s = {"float32_matmul_precision": torch.get_float32_matmul_precision(),
         "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
         "default_dtype": str(torch.get_default_dtype()), "num_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        s["cuda_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
        s["cuda_matmul_allow_bf16_reduced"] = bool(torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction)
    return s


def _runs(device: str) -> list[tuple[str, str, str]]:
    """(tag, device, precision): float32 on the device and on CPU, and bf16 (a CUDA opt-in) on a CUDA device."""
    runs = [("device", device, "float32"), ("cpu", "cpu", "float32")]
    return runs + [("device_bf16", device, "bf16")] if device.startswith("cuda") else runs


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def section_eval(a, out: dict) -> None:
    from eoembed.bench import evaluate

    X, ids, lab = synthetic(a.n, a.dim)
    kw = dict(ids=ids, folds=a.folds, epochs=10, progress=False)
    evaluate(X[:300], lab.iloc[:300], ids=ids[:300], folds=2, epochs=1, device=a.device, progress=False)   # warm-up
    times = []
    for _ in range(a.repeats):
        _sync(a.device)
        t0 = time.perf_counter()
        r_dev = evaluate(X, lab, device=a.device, **kw)
        _sync(a.device)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    r_cpu = evaluate(X, lab, device="cpu", **kw)
    t_cpu = time.perf_counter() - t0
    fd, fc = (r.folds.sort_values(["task", "fold"])["score"].to_numpy(dtype=float) for r in (r_dev, r_cpu))
    out.update({"n": a.n, "dim": a.dim, "tasks": len(TASKS), "folds": a.folds, "epochs": 10,
                "seconds_device": times, "best_seconds_device": min(times), "seconds_cpu_engine": t_cpu,
                "goal_under_1s": bool(min(times) < 1.0) if a.device.startswith("cuda") else None,
                "max_abs_fold_score_diff_vs_cpu": float(np.nanmax(np.abs(fd - fc))),
                "q_device": r_dev.per_task["q_stat"].astype(float).to_dict(),
                "q_cpu": r_cpu.per_task["q_stat"].astype(float).to_dict(),
                "precision_device": r_dev.details.get("settings", {}).get("precision")})


def section_svm(a, out: dict) -> None:
    from eoembed.bench import evaluate
    from eoembed.bench import svm as S

    X, ids, lab = synthetic(a.svm_n, a.dim, seed=1)
    t0 = time.perf_counter()
    g_dev = S.gram(X, device=a.device)
    t_dev = time.perf_counter() - t0
    t0 = time.perf_counter()
    g_cpu = S.gram(X, device="cpu")
    t_cpu = time.perf_counter() - t0
    cfg = {"probe_type": "svm", "probe_params": {**S.SVM_PROBE_DEFAULTS,
                                                 "opt_params": {"n_iter": 3, "n_jobs": 1}}}
    lab2 = lab[["clouds_reg", "random_cls"]]
    lab2.attrs["task_types"] = {t: lab.attrs["task_types"][t] for t in lab2.columns}
    r = {d: evaluate(X, lab2, ids=ids, folds=4, config=cfg, device=d, progress=False) for d in (a.device, "cpu")}
    out.update({"n": a.svm_n, "gram_seconds_device": t_dev, "gram_seconds_cpu": t_cpu,
                "gram_max_rel_diff": float(np.max(np.abs(g_dev - g_cpu)) / np.max(np.abs(g_cpu))),
                "fold_scores_max_abs_diff": float(np.max(np.abs(
                    r[a.device].folds.sort_values(["task", "fold"])["score"].to_numpy(dtype=float)
                    - r["cpu"].folds.sort_values(["task", "fold"])["score"].to_numpy(dtype=float))))})


def section_extract(a, out: dict, work: Path) -> dict:
    from eoembed.data import open_cube, sample
    from eoembed.extract import extract, open_embeddings

    root = sample(work / "sample", n=a.samples, seed=0, size=32, progress=False)
    cube = open_cube(root)
    weights = a.presto_weights if a.presto_weights and Path(a.presto_weights).is_file() else None
    size = "full" if weights else "tiny"
    embs = {}
    for tag, dev, prec in _runs(a.device):
        t0 = time.perf_counter()
        extract(cube, models=["presto"], out=work / f"emb_{tag}.zarr", device=dev, weights={"presto": weights},
                size=size, precision=prec, progress=False)
        out[f"seconds_{tag}"] = time.perf_counter() - t0
        embs[tag] = open_embeddings(work / f"emb_{tag}.zarr")["presto"].load()
    ref = np.abs(embs["cpu"].values).max()
    out.update({"samples": a.samples, "weights": str(weights) if weights else "random (tiny)",
                "max_abs_diff_device_vs_cpu": float(np.abs(embs["device"].values - embs["cpu"].values).max()),
                "max_abs_diff_bf16_vs_cpu": (float(np.abs(embs["device_bf16"].values - embs["cpu"].values).max())
                                             if "device_bf16" in embs else None),
                "max_abs_cpu": float(ref)})
    return {"root": root, "emb": embs["cpu"]}


def section_compress(a, out: dict, ctx: dict) -> None:
    from eoembed.compress import train_compressor
    from eoembed.data import read_labels

    labels = read_labels(Path(ctx["root"]) / "labels")
    hist = {}
    for tag, dev, prec in _runs(a.device):
        t0 = time.perf_counter()
        r = train_compressor({"presto": ctx["emb"]}, labels, epochs=4, eval_every=2, device=dev, precision=prec,
                             out_dim=64, q_mode="ridge", q_folds=3, seed=0, progress=False)
        out[f"seconds_{tag}"] = time.perf_counter() - t0
        hist[tag] = r.history["val_mse"].to_numpy(dtype=float)
    out.update({"val_mse": {k: v.tolist() for k, v in hist.items()},
                "max_rel_diff_val_mse_device_vs_cpu": float(np.max(np.abs(hist["device"] - hist["cpu"])
                                                                   / np.abs(hist["cpu"])))})


def section_distill(a, out: dict, ctx: dict) -> None:
    from eoembed.compress import distill

    for tag, prec in (("float32", "float32"), ("bf16", "bf16"))[:2 if a.device.startswith("cuda") else 1]:
        t0 = time.perf_counter()
        r = distill(ctx["emb"], prefixes=(16, 32, 64), out_dim=64, epochs=5, device=a.device, precision=prec,
                    progress=False)
        out[f"seconds_{tag}"] = time.perf_counter() - t0
        last = r.history.iloc[-1]
        out[f"cosine_last_epoch_{tag}"] = {k: float(last[f"cos/{k}"]) for k in (16, 32, 64)}


def section_pixel(a, out: dict, work: Path) -> None:
    from eoembed.pixel import encode, pretrain

    for tag, dev in (("device", a.device), ("cpu", "cpu")):
        t0 = time.perf_counter()
        r = pretrain(f"sample:{a.pixels}", "tiny", steps=5, batch_size=128, device=dev, out=work / f"pix_{tag}",
                     progress=False)
        out[f"pretrain_seconds_{tag}"] = time.perf_counter() - t0
        out[f"final_loss_{tag}"] = float(r.history["loss"].iloc[-1])
        t0 = time.perf_counter()
        e = encode(r.encoder, f"sample:{a.pixels}", device=dev, progress=False)
        out[f"encode_seconds_{tag}"] = time.perf_counter() - t0
        out[f"encoded_finite_{tag}"] = bool(np.isfinite(e.values).all())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--folds", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--svm-n", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=64, help="generated samples for extract / compress / distill")
    ap.add_argument("--pixels", type=int, default=2000)
    ap.add_argument("--presto-weights", default=str(ROOT.parent / "shared" / "weights" / "presto" / "default_model.pt"))
    ap.add_argument("--sections", default="eval,svm,extract,compress,distill,pixel")
    ap.add_argument("--quick", action="store_true", help="smaller default sizes for a CPU smoke test (n 400, dim 64, "
                                                         "4 folds, ...)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_gpu.json"))
    if "--quick" in sys.argv[1:]:   # smaller defaults; sizes given explicitly still win
        ap.set_defaults(n=400, dim=64, folds=4, repeats=1, svm_n=200, samples=24, pixels=300)
    a = ap.parse_args()
    import torch

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("SKIPPED: no CUDA device here (this is the GPU device check; --device cpu --quick runs it as a smoke "
              "test).")
        return
    before = torch_state()
    sys.path.insert(0, str(ROOT))
    res: dict = {"what": __doc__.splitlines()[0], "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                 "device": a.device, "torch": torch.__version__, "python": platform.python_version(),
                 "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
                 "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                 "sections": {}, "errors": {}}
    wanted = a.sections.split(",")
    ctx = None
    with tempfile.TemporaryDirectory(prefix="eoembed-gpu-") as tmp:
        work = Path(tmp)
        for name in ("eval", "svm", "extract", "compress", "distill", "pixel"):
            if name not in wanted:
                continue
            if name in ("compress", "distill") and ctx is None:
                res["errors"][name] = "skipped: it needs the embeddings of the extract section (not run, or failed)"
                continue
            sec: dict = {}
            t0 = time.perf_counter()
            try:
                if name == "eval":
                    section_eval(a, sec)
                elif name == "svm":
                    section_svm(a, sec)
                elif name == "extract":
                    ctx = section_extract(a, sec, work)
                elif name == "compress":
                    section_compress(a, sec, ctx)
                elif name == "distill":
                    section_distill(a, sec, ctx)
                else:
                    section_pixel(a, sec, work)
            except Exception:  # noqa: BLE001 - a device run is scarce: record and go on
                res["errors"][name] = traceback.format_exc()[-4000:]
            sec["section_seconds"] = time.perf_counter() - t0
            res["sections"][name] = sec
            print(f"[{name}] {time.perf_counter() - t0:.1f} s" + ("  ERROR" if name in res["errors"] else ""),
                  flush=True)
    after = torch_state()
    res["state"] = {"before": before, "after": after, "unchanged": before == after}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1, default=str))
    ev = res["sections"].get("eval", {})
    print(json.dumps({"eval_best_seconds_device": ev.get("best_seconds_device"),
                      "eval_max_fold_diff_vs_cpu": ev.get("max_abs_fold_score_diff_vs_cpu"),
                      "state_unchanged": res["state"]["unchanged"], "errors": sorted(res["errors"])}, indent=1))
    for name, tb in res["errors"].items():
        print(f"--- {name}\n{tb}")


if __name__ == "__main__":
    main()
