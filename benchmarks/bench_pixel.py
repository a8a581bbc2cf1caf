"""Pixel encoder (eoembed.pixel): pretraining throughput, bucket vs padding inference, WorldCereal linear probes.

Parts (``--part``, each well under 3 minutes on the project's 2-core CPU machine):

- ``throughput``: Barlow Twins pretraining d-pixels/s on CPU for the tiny and N encoders (generated dense
  series, 73 S2 / 61 S1 observation slots, views L ~ U{8..16}); median step time after 2 warm-up steps.
- ``buckets``: encoding the same pixels with adaptive buckets (masked fill, identical outputs) and with
  fixed-length padding to the full observation axis, plus midpoint-resampling buckets; pixels/s and the largest
  absolute difference between the bucket and the padding outputs.
- ``worldcereal`` (needs ../shared): the 500 labelled WorldCereal pixels (task sampling_label, classes with
  >= 10 pixels: 5 classes, 472 pixels), linear-probe score of ``linear_probe_score`` (evaluation engine, ridge
  mode, tessera metric: chance-adjusted balanced accuracy, seeded ShuffleSplit folds, probe penalty chosen inside
  each training part) for: a tiny encoder pretrained (self-supervised, labels unused) on those 500 pixels, the
  same encoder untrained (random init: control), Presto with the real weights, and two raw-band baselines
  (``raw_series``: the 12 monthly S2+S1 values, nodata replaced by the feature's mean over all pixels, stated
  here because it is a fill; ``raw_stats``: per-band mean / std / min / max over each pixel's valid months, the
  feature's mean for a pixel without any valid month of that modality, counted in ``raw_stats_filled_pixels``).

Writes benchmarks/results/bench_pixel_<part>.json (worldcereal: bench_pixel_worldcereal_<steps>steps.json; its
pretraining and finished probe scores are kept in --work, so a killed run resumes).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pixel.py [--part all|throughput|buckets|worldcereal]
        [--wc-steps 100|300] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def machine() -> dict:
    import torch
    return {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "note": "shared 2-core CPU machine (other jobs running), no GPU"}


def throughput(a) -> dict:
    import eoembed.pixel as ep
    ds = ep.sample_series(2048, seed=0)
    out = {}
    for size, batch in (("tiny", 256), ("N", 64)):
        res = ep.pretrain(ds, size, steps=a.steps, batch_size=batch, progress=False, threads=a.threads)
        st = res.history["step_seconds"].to_numpy()[2:]
        out[size] = {"n_params_enc": res.n_params, "n_params_proj": res.n_params_proj, "batch_size": batch,
                     "steps_timed": int(len(st)), "median_step_s": float(np.median(st)),
                     "d_pixels_per_s": float(batch / np.median(st)), "final_loss": float(res.history["loss"].iloc[-1])}
        print(size, out[size], flush=True)
    return out


def buckets(a) -> dict:
    import eoembed.pixel as ep
    ds = ep.sample_series(a.n, seed=5)
    out = {"n_pixels": a.n, "s2_slots": int(ds.sizes["s2_obs"]), "s1_slots": int(ds.sizes["s1_obs"]),
           "mean_valid_s2": float(ds["s2_valid"].values.sum(1).mean()),
           "mean_valid_s1": float(ds["s1_valid"].values.sum(1).mean())}
    for size in ("tiny", "N"):
        import torch
        n = a.n if size == "tiny" else a.n // 4   # N: a quarter of the pixels (same pixels' first quarter)
        sub = ds.isel(pixel=slice(0, n))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            enc = ep.PixelEncoder(size)
        enc.set_normalisation(ep.band_stats(ds))
        enc.eval()
        row = {}
        res = {}
        for name, kw in (("pad", {"mode": "pad"}), ("bucket_mask", {"fill": "mask"}),
                         ("bucket_resample", {"fill": "resample"})):
            ep.encode(enc, ds.isel(pixel=slice(0, 64)), progress=False, threads=a.threads, **kw)  # warm-up
            t = time.perf_counter()
            res[name] = ep.encode(enc, sub, batch_size=256, progress=False, threads=a.threads, **kw)
            secs = time.perf_counter() - t
            row[name] = {"n_pixels": n, "seconds": secs, "pixels_per_s": n / secs,
                         "sequence_slots": res[name].attrs["sequence_slots"]}
        row["max_abs_diff_bucket_mask_vs_pad"] = float(np.abs(res["bucket_mask"].values - res["pad"].values).max())
        row["speedup_bucket_mask_vs_pad"] = row["bucket_mask"]["pixels_per_s"] / row["pad"]["pixels_per_s"]
        row["speedup_bucket_resample_vs_pad"] = row["bucket_resample"]["pixels_per_s"] / row["pad"]["pixels_per_s"]
        out[size] = row
        print(size, row, flush=True)
    return out


def worldcereal(a) -> dict:
    import warnings

    import torch
    import xarray as xr

    import eoembed.pixel as ep
    from eoembed.pixel.score import linear_probe_score
    warnings.filterwarnings("ignore", category=RuntimeWarning, message=".*(empty slice|All-NaN|Degrees of freedom)")
    shared = Path(a.shared)
    pq = shared / "data" / "worldcereal" / "test_public_extractions.parquet"
    px = ep.worldcereal_pixel_series(pq)
    ids = [str(i) for i in px["id"].values]
    out: dict = {"n_pixels": len(ids), "task": "sampling_label", "folds": a.folds, "min_class_size": 10}
    embs = {}
    t = time.perf_counter()
    # resumable: a killed benchmark continues its pretraining and keeps finished probe scores (--work)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    res = ep.pretrain(px, "tiny", steps=a.wc_steps, batch_size=128, progress=True, threads=a.threads, seed=0,
                      out=work / "run", checkpoint_every=10)
    out["pretrain"] = {"steps": a.wc_steps, "batch_size": 128, "seconds_this_call": time.perf_counter() - t,
                       "seconds_steps": float(res.history["step_seconds"].sum()),
                       "final_loss": float(res.history["loss"].iloc[-1]),
                       "first_loss": float(res.history["loss"].iloc[0]), "n_params_enc": res.n_params}
    embs["pixel_tiny_pretrained"] = ep.encode(res.encoder, px, progress=False, threads=a.threads)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        rnd = ep.PixelEncoder(ep.resolve_config("tiny", s2_bands=res.encoder.cfg.s2_bands))
    rnd.set_normalisation(ep.band_stats(px))
    embs["pixel_tiny_random_init"] = ep.encode(rnd.eval(), px, progress=False, threads=a.threads)
    # Presto with the real weights
    from eoembed.product.worldcereal import _embed, _model, pixel_series
    s = pixel_series(pq)
    model = _model(str(shared / "weights" / "presto" / "default_model.pt"), "cpu")
    t = time.perf_counter()
    pe = _embed(s["values"], s["bands"], s["months"], s["latlon"], s["has_obs"], model, 4096, False)
    out["presto_seconds"] = time.perf_counter() - t
    embs["presto"] = xr.DataArray(pe, dims=("sample", "feature"), coords={"sample": s["ids"]})
    # raw-band baselines
    v = np.concatenate([px["s2"].values, px["s1"].values], -1).reshape(len(ids), -1).astype(np.float64)
    col_mean = np.nanmean(v, 0)
    raw = np.where(np.isfinite(v), v, col_mean[None])
    embs["raw_series"] = xr.DataArray(raw, dims=("sample", "feature"), coords={"sample": ids})
    feats = []
    for m in ("s2", "s1"):
        x = np.where(px[f"{m}_valid"].values[..., None], px[m].values, np.nan).astype(np.float64)
        feats += [np.nanmean(x, 1), np.nanstd(x, 1), np.nanmin(x, 1), np.nanmax(x, 1)]
    st = np.concatenate(feats, 1)
    out["raw_stats_filled_pixels"] = int((~np.isfinite(st)).any(1).sum())  # a modality without valid month
    st = np.where(np.isfinite(st), st, np.nanmean(st, 0)[None])
    embs["raw_stats"] = xr.DataArray(st, dims=("sample", "feature"), coords={"sample": ids})
    part = work / f"scores_{a.wc_steps}_{a.folds}.json"
    scores = json.loads(part.read_text()) if part.exists() else {}
    for name, e in embs.items():
        if name in scores:
            continue
        t = time.perf_counter()
        sc = linear_probe_score(e, px, task="sampling_label", folds=a.folds, min_class_size=10, seed=0)
        scores[name] = {"score": sc["score"], "score_sd": sc["score_sd"], "n_samples": sc["n_samples"],
                        "n_classes": sc["n_classes"], "dims": int(e.shape[1]), "excluded": sc["excluded"],
                        "probe_seconds": time.perf_counter() - t}
        print(name, scores[name], flush=True)
        part.write_text(json.dumps(scores, default=float))
    out["scores"] = scores
    out["metric"] = "chance-adjusted balanced accuracy (bacc - 1/K)/(1 - 1/K), mean over folds"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("all", "throughput", "buckets", "worldcereal"), default="all",
                    help="all (default, as `make bench` runs it): every part; worldcereal only when --shared exists")
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=12, help="pretraining steps timed per size (throughput)")
    ap.add_argument("--n", type=int, default=4000, help="pixels to encode (buckets)")
    ap.add_argument("--wc-steps", type=int, default=100, help="pretraining steps on the WorldCereal pixels")
    ap.add_argument("--folds", type=int, default=20)
    ap.add_argument("--work", default="/tmp/eoembed_bench_pixel_wc", help="resumable work folder (worldcereal)")
    a = ap.parse_args()
    parts = [a.part] if a.part != "all" else ["throughput", "buckets"] + (
        ["worldcereal"] if (Path(a.shared) / "data" / "worldcereal").is_dir() else [])
    for part in parts:
        a.part = part
        run_part(a)


def run_part(a) -> None:
    t = time.perf_counter()
    res = {"throughput": throughput, "buckets": buckets, "worldcereal": worldcereal}[a.part](a)
    res.update({"part": a.part, "machine": machine(), "threads": a.threads, "wall_seconds": time.perf_counter() - t})
    tag = f"_{a.wc_steps}steps" if a.part == "worldcereal" else ""
    path = Path(__file__).parent / "results" / f"bench_pixel_{a.part}{tag}.json"
    path.write_text(json.dumps(res, indent=1, default=float))
    print("wrote", path)


if __name__ == "__main__":
    main()
