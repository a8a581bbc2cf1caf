"""The main job end to end: sample -> extract -> evaluate -> compress -> evaluate, on the bundled generated sample.

``eoembed demo OUT`` (= :func:`demo`) is the README's first command. It needs no network and no downloaded
weights: the foundation models run as tiny random-initialised configurations (same code path as the full models),
so the numbers show the pipeline working, not the models' quality. Every step is resumable: re-running the demo
reuses the sample, the embedding store, the compressor checkpoints and the layouts already in ``OUT``.

It ends with the dashboard (``serve=True``; the CLI's default, ``--no-serve`` to skip it) and always writes a
static report ``OUT/report.html`` when the UI extra is installed. Both come from the UI layer through a plugin hook
(:mod:`eoembed.plugins`): eoembed never imports ``widgets``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from eoembed.plugins import PluginMissing, hook

DEMO_MODELS: tuple[str, ...] = ("croma_base", "dofa_base", "scalemae_large", "copernicusfm_base",
                                "prithvi_eo_v2_300", "presto")


def raw_band_features(cube: xr.Dataset) -> xr.DataArray:
    """Training-free baseline: per-season, per-band spatial means and standard deviations -> (sample, feature)."""
    bands = cube["bands"]
    stats = xr.concat([bands.mean(("y", "x")), bands.std(("y", "x"))], dim="stat")  # (stat, sample, season, band)
    flat = stats.transpose("sample", "stat", "season", "band").values.reshape(cube.sizes["sample"], -1)
    return xr.DataArray(flat.astype(np.float32), dims=("sample", "feature"),
                        coords={"sample": cube["sample"].values, "feature": np.arange(flat.shape[1])},
                        attrs={"method": "raw band mean+std per season"})


def _flat(emb: xr.DataArray) -> xr.DataArray:
    """(sample, [season,] feature) -> (sample, feature)."""
    if emb.ndim == 2:
        return emb.load()
    arr = emb.values.reshape(emb.sizes["sample"], -1)
    return xr.DataArray(arr, dims=("sample", "feature"),
                        coords={"sample": emb["sample"].values, "feature": np.arange(arr.shape[1])})


#: Fewest samples the demo accepts: every task needs >= 11 labelled samples for 90/10 folds, plus a validation split.
DEMO_MIN_SAMPLES = 20


def _check_demo_args(out: Any, n: int, size: int, seed: int, models: Sequence[str], model_size: str, epochs: int,
                     eval_every: int, folds: int, out_dim: int, mode: str, device: str | None,
                     prefixes: Sequence[int] | None = None, port: int = 5006) -> None:
    """Every argument of :func:`demo`, checked before any work (DataError / OutputError naming the fix)."""
    from eoembed.checks import check_choice, check_device, check_int, check_out_path
    from eoembed.errors import DataError
    from eoembed.models.registry import model_names

    check_out_path(out, option="OUT")
    check_int("n", n, DEMO_MIN_SAMPLES)
    check_int("size", size, 8)
    check_int("seed", seed, 0)
    for name, v, lo in (("epochs", epochs, 1), ("eval_every", eval_every, 1), ("folds", folds, 2),
                        ("out_dim", out_dim, 1)):
        check_int(name, v, lo)
    check_choice("model_size", model_size, ("tiny", "full"))
    check_choice("mode", mode, ("ridge", "compat"))
    check_device(device)
    check_int("port", port, 1)
    if prefixes:
        from eoembed.compress.train import _check_prefix_args
        _check_prefix_args(list(prefixes), None, int(out_dim))
    models = list(models)
    known = model_names()
    unknown = [m for m in models if m not in known]
    if not models or unknown:
        raise DataError(f"model(s) {unknown or models} are not registered; choose from {known}.")
    if len(set(models)) != len(models):
        raise DataError(f"models {models} name a model twice; give each model once.")


#: Label permutations of the demo's null control (each method is also scored on labels without signal).
NULL_DRAWS = 3


def _score(name: str, emb: Any, labels: Any, folds: int, mode: str, out_p: Path) -> tuple[Any, Any, Any]:
    """(compat result, ``mode`` result, ``mode`` null control over NULL_DRAWS label permutations) of one method."""
    from eoembed.bench import evaluate, null_control

    compat = evaluate(emb, labels, folds=folds, mode="compat", out=out_p / "bench" / "compat" / name, progress=False)
    res = evaluate(emb, labels, folds=folds, mode=mode, out=out_p / "bench" / mode / name, progress=False)
    return compat, res, null_control(emb, labels, draws=NULL_DRAWS, folds=folds, mode=mode, progress=False)


def _print_tables(table: pd.DataFrame, overall: pd.DataFrame, trained: Any, mode: str) -> None:
    """The demo's three tables: Q per task and method, overall Q-bar / Z, the compressor history."""
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 2):
        print(f"\nQ per task (rows) and method (columns), {mode} probes:")
        print(table.round(1).to_string())
        print(f"\nOverall quality per method (Q-bar = mean Q over tasks; null = Q-bar of the same embedding on labels "
              f"permuted within each task, mean and sd over {NULL_DRAWS} draws, {mode} probes; gap = Q-bar {mode} - "
              "null; Z = task-normalised score):")
        print(overall.round(2).to_string())
        print("\nCompressor history (val MSE; in-loop Q-bar on the selection and the report half of the labels):")
        hist = trained.history[["epoch", "train_loss", "val_mse", "q_select", "q_report"]].round(3)
        print(hist.to_string(index=False))
        print(f"\nselected epoch (best selection Q-bar {trained.q_select:.2f}): {trained.selected_epoch}; its "
              f"held-out report Q-bar {trained.q_report:.2f}; best-MSE epoch: {trained.best_mse_epoch}. The "
              "fused_ae rows above score all samples, half of which chose the epoch.")


def _sample_done(root: Path, **params: int) -> bool:
    """True when ``root`` holds a complete generated sample made with ``params`` (n, seed, size)."""
    try:
        m = json.loads((root / ".eoembed_sample.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(m.get("complete")) and all(m.get(k) == v for k, v in params.items())


#: Matryoshka prefix sizes the demo's compressor is trained with (out_dim is appended by train_compressor).
DEMO_PREFIXES: tuple[int, ...] = (16, 32, 64)


def _ui_step(what: str, fn: Any) -> Any:
    """Run an optional UI-layer step; when the UI extra (or a view not merged yet) is missing, say so and go on."""
    try:
        return fn()
    except PluginMissing as e:
        print(f"      skipped {what}: {e}")
    except ImportError as e:
        print(f"      skipped {what}: {e} (install the UI extra: pip install -e '.[ui]')")
        return None


def _layouts_step(out_p: Path, prefixes: Sequence[int] | None, progress: bool) -> None:
    try:
        from eoembed.projection import layouts
    except ImportError as e:
        print(f"      skipped: eoembed.projection is not available here ({e}); the UMAP view computes layouts "
              "on first use instead")
        return
    import inspect
    extra = {"prefixes": tuple(prefixes or ())} if "prefixes" in inspect.signature(layouts).parameters else {}
    layouts(out_p, progress=progress, **extra)


def demo(out: str = "out/demo", n: int = 200, size: int = 64, seed: int = 0,
         models: Sequence[str] = DEMO_MODELS, model_size: str = "tiny", epochs: int = 20, eval_every: int = 5,
         folds: int = 10, out_dim: int = 128, mode: str = "ridge", device: str | None = None,
         progress: bool = True, prefixes: Sequence[int] | str | None = "auto", layouts: bool = True,
         report: bool = True, serve: bool = False, port: int = 5006, address: str = "127.0.0.1",
         show: bool = False) -> dict[str, Any]:
    """Run the main job on a generated sample of ``n`` locations (``size`` px) and print the score tables.

    Every method is scored twice: NeuCo-Bench's own protocol (``mode="compat"``; its 10-epoch probe is badly
    under-trained on a few hundred samples, so its Q sits near 0) and ``mode`` (default "ridge": tuned closed-form
    probes, NOT NeuCo-Bench), which also drives the compressor's in-loop Q-bar and the per-task table.

    Writes under ``out``: sample/ (SSL4EO-S12-downstream layout), emb.zarr (one group per model),
    compress/ (history.csv, checkpoints), embeddings.csv (NeuCo-Bench CSV of the compressed vectors),
    bench/ (results per method), demo_summary.json, layouts/ (2-D UMAP layouts, when eoembed.projection is
    present) and report.html (static report, plots embedded, opens from disk). Returns the summary dict.

    prefixes: Matryoshka code sizes the compressor is also trained and scored at; "auto" (default): those of
    :data:`DEMO_PREFIXES` below ``out_dim``; None: the plain compressor.
    layouts / report: precompute the UMAP layouts / write the static report (both need the UI extra).
    serve: end by serving the dashboard at ``http://{address}:{port}/dashboard`` (blocks until Ctrl-C); the
    CLI's default is ``--serve`` (``--no-serve`` to skip), the function's is False so scripts do not block.
    """
    from eoembed.bench import compare
    from eoembed.compress import train_compressor
    from eoembed.data import open_cube, read_labels, sample
    from eoembed.errors import DataError
    from eoembed.extract import extract, open_embeddings

    if isinstance(prefixes, str):
        if prefixes != "auto":
            raise DataError(f"prefixes={prefixes!r}: pass 'auto', None or a list of code sizes such as [16, 32, 64]")
        prefixes = [k for k in DEMO_PREFIXES if k < out_dim] or None
    _check_demo_args(out, n, size, seed, models, model_size, epochs, eval_every, folds, out_dim, mode, device,
                     prefixes, port)
    prefixes = list(prefixes) if prefixes else None
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    root = out_p / "sample"
    if _sample_done(root, n=n, seed=seed, size=size):
        print(f"[1/7] reusing the sample in {root}")
    else:  # sample() resumes a partial sample and refuses one made with other arguments
        print(f"[1/7] generating {n} samples of {size}x{size} px into {root}")
        sample(root, n=n, seed=seed, size=size, progress=progress)
    labels = read_labels(root / "labels")
    cube = open_cube(root)

    print(f"[2/7] extracting embeddings with {len(models)} models ({model_size}, random weights) -> emb.zarr")
    store = out_p / "emb.zarr"
    extract(cube, models=list(models), out=store, size=model_size, weights=None, device=device,
            missing_bands="error", progress=progress)
    embs = open_embeddings(store)

    print(f"[3/7] evaluating each model and a raw-band baseline ({folds} folds, compat and {mode} probes)")
    methods: dict[str, Any] = {"raw_bands": raw_band_features(cube)}
    methods.update({name: _flat(arr) for name, arr in embs.items()})

    compat, results, nulls = {}, {}, {}
    items: Any = methods.items()
    if progress:
        from tqdm.auto import tqdm
        items = tqdm(list(items), desc="evaluate", unit="method")
    for name, emb in items:
        compat[name], results[name], nulls[name] = _score(name, emb, labels, folds, mode, out_p)

    pre = f", Matryoshka prefixes {prefixes}" if prefixes else ""
    print(f"[4/7] training the fusion compressor ({epochs} epochs, {out_dim}-d output{pre}, Q every {eval_every})")
    trained = train_compressor(store, labels, epochs=epochs, eval_every=eval_every, out=out_p / "compress",
                               out_dim=out_dim, q_mode=mode, q_folds=folds, device=device, progress=progress,
                               prefixes=prefixes)
    csv = trained.export(out_p / "embeddings.csv", overwrite=True)

    print(f"[5/7] evaluating the compressed embeddings ({csv})")
    compat["fused_ae"], results["fused_ae"], nulls["fused_ae"] = _score("fused_ae", csv, labels, folds, mode, out_p)
    if prefixes:
        from eoembed.compress import prefix_scores
        ks = sorted({*prefixes, out_dim})
        print(f"      Matryoshka prefixes {ks}: Q-bar of each prefix -> prefix_scores.csv")
        prefix_scores(trained.embeddings, labels, prefixes=ks, baselines=(), mode=mode, folds=folds,
                      progress=progress).to_csv(out_p / "prefix_scores.csv", index=False)
    table, z, board = compare(results, nulls=nulls)
    overall = pd.DataFrame({"Q-bar compat": {k: r.overall_q for k, r in compat.items()},
                            f"Q-bar {mode}": {k: r.overall_q for k, r in results.items()},
                            "null": {k: c.q_mean for k, c in nulls.items()},
                            "null sd": {k: c.q_std for k, c in nulls.items()},
                            "gap": {k: results[k].overall_q - c.q_mean for k, c in nulls.items()},
                            f"Z {mode}": z})

    _print_tables(table, overall, trained, mode)
    summary = {
        "n_samples": int(cube.sizes["sample"]), "size": int(cube.sizes["y"]), "models": list(models),
        "model_size": model_size, "folds": folds, "mode": mode,
        "overall_q_compat": {k: float(r.overall_q) for k, r in compat.items()},
        "overall_q": {k: float(r.overall_q) for k, r in results.items()},
        "z": {k: float(v) for k, v in z.items()},
        "null_control": {k: {"draws": NULL_DRAWS, "q_mean": c.q_mean, "q_std": c.q_std} for k, c in nulls.items()},
        "selected_epoch": trained.selected_epoch, "best_mse_epoch": trained.best_mse_epoch,
        "fused_ae_q_select": trained.q_select, "fused_ae_q_report": trained.q_report,
        "history": json.loads(trained.history.to_json(orient="records")),
    }
    summary["prefixes"] = prefixes
    (out_p / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nwrote {out_p / 'demo_summary.json'}")

    if layouts:
        print(f"[6/7] 2-D UMAP layouts of every embedding -> {out_p / 'layouts'} (first fit: ~45 s of numba "
              "compilation)")
        _layouts_step(out_p, prefixes, progress)
    else:
        print("[6/7] UMAP layouts skipped (layouts=False)")
    if report:
        print(f"[7/7] static report -> {out_p / 'report.html'}")

        def _report() -> None:
            print(f"      wrote {hook('report')(out_p)} (open it from disk: no server needed)")
        _ui_step("the static report", _report)
    if serve:
        _ui_step("the dashboard", lambda: hook("serve")(out_p, port=port, address=address, show=show))
    return summary
