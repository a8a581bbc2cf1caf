"""Model-zoo throughput: eoembed's batched forward vs the winning solution's one-sample-at-a-time pattern.

For each model and batch size B in --batch-sizes, times ``embedder(**embedder.prepare(x))`` on a random cube
batch (eoembed: the B*4 season images in one backbone batch) and the Embed2Scale winning-code pattern (one
sample per call and, for per-season models, one season per call: B*4 forward passes of batch 1). Reports
samples/s for both, their ratio and memory (CUDA: peak allocated; CPU: growth of the process peak RSS during the
batched run, plus the process peak RSS). Timings are the best of --repeats runs (the machine may be shared).
Writes benchmarks/results/bench_models.json and prints a table.

    python benchmarks/bench_models.py                       # tiny models, 32 px, CPU (seconds)
    python benchmarks/bench_models.py --full --models croma_base --batch-sizes 1 8   # full size, random weights
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from eoembed.data.bands import SEASONS, all_band_keys
from eoembed.models import load_model, model_names

ZOO = ["croma_base", "croma_large", "dofa_base", "dofa_large", "scalemae_large", "copernicusfm_base",
       "prithvi_eo_v2_300", "prithvi_eo_v2_600"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def bench_model(name: str, size: str, batch_sizes: list[int], px: int, repeats: int, device: str) -> list[dict]:
    emb = load_model(name, weights=None, size=size, device=device)
    dev = emb.device
    keys = all_band_keys()
    rows = []
    for B in batch_sizes:
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 4000, size=(B, len(SEASONS), len(keys), px, px)).astype(np.float32)
        x[:, :, :2] = rng.normal(-15, 5, size=(B, len(SEASONS), 2, px, px))
        inputs = emb.prepare(x, keys)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        rss0 = _rss_mb()
        t_batched = _time(lambda: emb(**inputs), repeats, dev)
        # CUDA: peak allocated by this batched forward; CPU: growth of the process peak RSS during it (0 when the
        # earlier, larger runs already set the peak) and the process peak RSS itself
        peak = (torch.cuda.max_memory_allocated(dev) / 2**20) if dev.type == "cuda" else _rss_mb() - rss0

        per_season = emb.spec.temporal == "per_season"

        def one_by_one() -> None:  # winning-code pattern: batch 1, one season per backbone call
            with torch.no_grad():
                for b in range(B):
                    if per_season:
                        for s in range(len(SEASONS)):
                            emb.encode({k: v[b, s:s + 1].to(dev) for k, v in inputs.items()})
                    else:
                        emb(**{k: v[b:b + 1] for k, v in inputs.items()})

        t_single = _time(one_by_one, max(1, repeats // 2), dev)
        rows.append({"model": name, "size": size, "batch": B, "px": emb.spec.input_size,
                     "samples_per_s": B / t_batched, "single_samples_per_s": B / t_single,
                     "speedup": t_single / t_batched, "peak_mem_mb": round(peak, 1),
                     "process_peak_rss_mb": round(_rss_mb(), 1), "device": str(dev)})
    del emb
    gc.collect()
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=None, help="model names (default: the 8 image models)")
    ap.add_argument("--batch-sizes", nargs="*", type=int, default=[1, 8, 32])
    ap.add_argument("--full", action="store_true", help="full-size random-init models (slow on CPU)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_models.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.models or [n for n in ZOO if n in model_names()]
    size = "full" if args.full else "tiny"
    rows = []
    for n in names:
        px = 264 if args.full else 32
        rows += bench_model(n, size, args.batch_sizes, px, args.repeats, args.device)
    result = {"size": size, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.machine(), "note": "single = one sample (and one season) per forward pass, "
              "as in the Embed2Scale winning code; speedup = batched samples/s over single samples/s", "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"{'model':20s} {'size':5s} {'B':>3s} {'batched/s':>10s} {'single/s':>9s} {'ratio':>6s} {'dMB':>6s} "
          f"{'rssMB':>7s}")
    for r in rows:
        print(f"{r['model']:20s} {r['size']:5s} {r['batch']:3d} {r['samples_per_s']:10.1f} "
              f"{r['single_samples_per_s']:9.1f} {r['speedup']:6.2f} {r['peak_mem_mb']:6.1f} "
              f"{r['process_peak_rss_mb']:7.1f}")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
