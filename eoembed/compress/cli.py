"""``eoembed fuse | train | ablate`` (mirror eoembed.compress.fuse, train_compressor, ablate; train --export
writes the selected embeddings like export_embeddings)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from eoembed.checks import (check_choice, check_device, check_fraction, check_in_path, check_int,
                            check_out_path)

Q_MODES = ("compat", "ridge")


def _check_common(store: str, labels: str | None, out: str | None, device: str | None, q_mode: str,
                  epochs: int | None, preset: str | None, out_dim: int | None) -> None:
    """Checks shared by ``train`` and ``ablate``, done before any data is read."""
    from eoembed.compress.model import PRESETS
    check_in_path(store, option="STORE")
    if labels is not None:
        check_in_path(labels, option="--labels", kind="dir")
    if out:
        check_out_path(out, option="--out")
    check_device(device)
    check_choice("--q-mode", q_mode, Q_MODES)
    check_int("--epochs", epochs, 1, allow_none=True)
    check_int("--out-dim", out_dim, 1, allow_none=True)
    if preset is not None:
        check_choice("--preset", preset, sorted(PRESETS))


def _weights(values: list[str] | None) -> object:
    """``--weights embed2scale`` or ``--weights croma=0.5 --weights dofa=1``."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    out = {}
    for v in values:
        k, sep, w = v.partition("=")
        if not sep:
            raise typer.BadParameter(f"--weights {v!r}: use MODEL_OR_FAMILY=WEIGHT or a preset name")
        try:
            out[k] = float(w)
        except ValueError:
            raise typer.BadParameter(f"--weights {v!r}: the weight must be a number, e.g. {k}=0.5") from None
    return out


def fuse(
    store: str = typer.Argument(..., help="embedding store (emb.zarr)"),
    out: str = typer.Argument(..., help="Zarr path to write the fused (sample, feature) array to"),
    models: Optional[list[str]] = typer.Option(None, "--model", "-m", help="models in fusion order (repeat)"),
    overwrite: bool = typer.Option(False, help="replace OUT if it exists"),
) -> None:
    """Concatenate the models of STORE (sorted names or --model order) into one vector per sample."""
    import shutil

    from eoembed.compress.fusion import fuse as run
    check_in_path(store, option="STORE")
    check_out_path(out, option="OUT", exist_ok=overwrite)
    fused = run(store, models or None)
    ds = fused.drop_vars("model").to_dataset(name="fused")
    ds.attrs = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in fused.attrs.items()}
    ds["sample"] = ds["sample"].astype(str)
    tmp = Path(out).with_name(Path(out).name + ".eoembed-tmp")  # written beside OUT, renamed when complete
    if tmp.exists():
        shutil.rmtree(tmp)
    ds.to_zarr(tmp, mode="w", consolidated=False)
    if Path(out).is_dir():
        shutil.rmtree(out)
    elif Path(out).exists():
        Path(out).unlink()
    tmp.rename(out)
    typer.echo(f"wrote {out}: {fused.sizes['sample']} samples x {fused.sizes['feature']} features; "
               f"slices {fused.attrs['slices']}")


def train(
    store: str = typer.Argument(..., help="embedding store (emb.zarr)"),
    labels: Optional[str] = typer.Option(None, help="NeuCo labels folder (none: select by val MSE)"),
    out: Optional[str] = typer.Option("compress_out", help="folder for checkpoints/, history.csv/json, exports"),
    models: Optional[list[str]] = typer.Option(None, "--model", "-m", help="models in fusion order (repeat)"),
    epochs: Optional[int] = typer.Option(None, help="epochs (default 160)"),
    eval_every: int = typer.Option(5, help="evaluate + checkpoint every N epochs"),
    val_fraction: float = typer.Option(0.2, help="held-out fraction for the validation MSE"),
    select_fraction: float = typer.Option(0.5, help="fraction of the labelled samples that selects the epoch "
                                                    "(the rest reports)"),
    select_task: Optional[list[str]] = typer.Option(None, help="select the epoch on this task, report the others "
                                                              "(repeat; replaces --select-fraction)"),
    select_seed: int = typer.Option(0, help="seed of the selection/report sample split"),
    seed: Optional[int] = typer.Option(None, help="seed (default 1337)"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda ... (default: cuda when available)"),
    preset: Optional[str] = typer.Option(None, help="'embed2scale' = winners' recipe incl. per-model weights"),
    hidden: Optional[int] = typer.Option(None, help="hidden width (default 2048)"),
    out_dim: Optional[int] = typer.Option(None, help="embedding size (default 1024)"),
    batch_size: Optional[int] = typer.Option(None, help="batch size (default 32)"),
    lr: Optional[float] = typer.Option(None, help="AdamW learning rate (default 1e-4)"),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay (default 0.05)"),
    weights: Optional[list[str]] = typer.Option(None, help="preset name or MODEL_OR_FAMILY=W (repeat)"),
    q_folds: Optional[int] = typer.Option(None, help="in-loop evaluation folds (default 40)"),
    q_mode: str = typer.Option("compat", help="evaluation mode of eoembed.bench.evaluate"),
    q_on: str = typer.Option("all", help="in-loop Q on 'all' samples or the 'val' split"),
    resume: bool = typer.Option(True, help="continue from the last checkpoint in OUT"),
    overwrite: bool = typer.Option(False, help="with --no-resume: delete OUT's checkpoints first"),
    threads: Optional[int] = typer.Option(None, help="CPU threads while training (default: 1 for small models)"),
    precision: str = typer.Option("float32", help="float32 (default, same on any machine) | bf16 (CUDA opt-in)"),
    prefix: Optional[list[int]] = typer.Option(None, help="Matryoshka prefix size (repeat, increasing, <= "
                                                          "--out-dim; out_dim is added): nested-prefix loss and "
                                                          "in-loop Q-bar per prefix"),
    select_prefix: Optional[int] = typer.Option(None, help="select the epoch on this prefix's Q-bar (one of "
                                                           "--prefix; default: the full size)"),
    export: Optional[str] = typer.Option(None, help="also write the selected embeddings (*.csv or *.zarr)"),
    dtype: str = typer.Option("float16", help="export dtype: float16 | float32"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train the compressor on STORE; prints the epoch selected on the selection labels, its held-out (report)
    Q-bar and the best-MSE epoch."""
    from eoembed.compress.train import IN_LOOP_Q_FOLDS, train_compressor
    _check_common(store, labels, out, device, q_mode, epochs, preset, out_dim)
    check_int("--eval-every", eval_every, 1)
    check_fraction("--val-fraction", val_fraction)
    if not select_task:
        check_fraction("--select-fraction", select_fraction)
    check_int("--q-folds", q_folds, 2, allow_none=True)
    check_choice("--q-on", q_on, ("all", "val"))
    check_choice("--dtype", dtype, ("float16", "float32"))
    check_choice("--precision", precision, ("float32", "bf16"))
    for name, v in (("--hidden", hidden), ("--batch-size", batch_size), ("--threads", threads)):
        check_int(name, v, 1, allow_none=True)
    w = _weights(weights)
    if prefix or select_prefix is not None:
        from eoembed.compress.model import PRESETS as _P, CompressorConfig
        from eoembed.compress.train import _check_prefix_args
        od = out_dim or (_P[preset]["out_dim"] if preset in _P else CompressorConfig.out_dim)
        _check_prefix_args(list(prefix) if prefix else None, select_prefix, int(od))
    if export:
        if not export.endswith((".csv", ".zarr")):
            raise typer.BadParameter(f"{export!r}: name the export *.csv or *.zarr", param_hint="--export")
        check_out_path(export, option="--export", kind="file" if export.endswith(".csv") else "dir",
                       exist_ok=False)
    res = train_compressor(store, labels, models=models or None, epochs=epochs, eval_every=eval_every, out=out,
                           val_fraction=val_fraction, select_fraction=select_fraction,
                           select_tasks=select_task or None, select_seed=select_seed, seed=seed, device=device,
                           preset=preset, hidden=hidden, out_dim=out_dim, batch_size=batch_size, lr=lr,
                           weight_decay=weight_decay, weights=w, q_folds=q_folds or IN_LOOP_Q_FOLDS, q_mode=q_mode,
                           q_on=q_on, resume=resume, overwrite=overwrite, threads=threads, progress=progress,
                           precision=precision, prefixes=list(prefix) if prefix else None,
                           select_prefix=select_prefix)
    if export:
        res.export(export, dtype=dtype)
    typer.echo(f"selected epoch {res.selected_epoch} by {res.selection} (selection Q-bar {res.q_select:.3f}; "
               f"held-out report Q-bar {res.q_report:.3f}); best val MSE {res.best_mse:.4g} at epoch "
               f"{res.best_mse_epoch}; checkpoint {res.checkpoint}")
    if res.prefixes:
        for r in res.prefix_scores().itertuples():
            typer.echo(f"  prefix k={r.k}: report Q-bar {r.q_report:.3f} (selection {r.q_select:.3f}), "
                       f"val MSE {r.val_mse:.4g}")
    if export:
        typer.echo(f"wrote {export}")


def ablate(
    store: str = typer.Argument(..., help="embedding store (emb.zarr)"),
    labels: str = typer.Option(..., help="NeuCo labels folder"),
    out: Optional[str] = typer.Option("ablation_out", help="folder for per-run outputs and the tables"),
    combo: Optional[list[str]] = typer.Option(None, help="a combination as MODEL,MODEL,... (repeat)"),
    baselines: list[str] = typer.Option(["pca", "rcf"], "--baseline", help="pca | rcf (repeat)"),
    cube: Optional[str] = typer.Option(None, help="cube / sample root for the RCF baseline"),
    epochs: Optional[int] = typer.Option(None, help="epochs per run (default 160)"),
    preset: Optional[str] = typer.Option(None, help="compressor preset"),
    out_dim: Optional[int] = typer.Option(None, help="embedding size (default 1024)"),
    eval_folds: int = typer.Option(40, help="folds of the held-out (report) and null-control evaluations"),
    q_folds: Optional[int] = typer.Option(None, help="folds of every selection score (default 40)"),
    select_fraction: float = typer.Option(0.5, help="fraction of the labelled samples used for selection"),
    select_task: Optional[list[str]] = typer.Option(None, help="select on this task, report the others (repeat)"),
    select_seed: int = typer.Option(0, help="seed of the selection/report sample split"),
    null_draws: int = typer.Option(5, help="label permutations of the null control (>= 2)"),
    baseline_dim: Optional[list[int]] = typer.Option(None, help="candidate PCA/RCF size (repeat; default "
                                                               "out_dim/8, /4, /2, out_dim)"),
    q_mode: str = typer.Option("compat", help="evaluation mode"),
    seed: Optional[int] = typer.Option(None, help="seed"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda ..."),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train + score every model combination and the baselines on held-out labels beside a null control; writes
    table.csv, per_task.csv, per_task_null.csv and selection.csv to OUT (columns: see eoembed.compress.ablate)."""
    from eoembed.compress.ablation import ablate as run
    from eoembed.compress.train import IN_LOOP_Q_FOLDS
    _check_common(store, labels, out, device, q_mode, epochs, preset, out_dim)
    check_int("--eval-folds", eval_folds, 2)
    check_int("--q-folds", q_folds, 2, allow_none=True)
    check_int("--null-draws", null_draws, 2)
    if not select_task:
        check_fraction("--select-fraction", select_fraction)
    for b in baselines:
        check_choice("--baseline", b, ("pca", "rcf"))
    for d in baseline_dim or ():
        check_int("--baseline-dim", d, 1)
    if cube is not None:
        check_in_path(cube, option="--cube")
    combos = [[m.strip() for m in c.split(",") if m.strip()] for c in combo] if combo else None
    if combos is not None and not all(combos):
        raise typer.BadParameter("an empty combination; give MODEL,MODEL,...", param_hint="--combo")
    try:
        res = run(store, labels, combos=combos, baselines=baselines,
                  cube=cube, epochs=epochs, preset=preset, out_dim=out_dim, out=out, eval_folds=eval_folds,
                  q_folds=q_folds or IN_LOOP_Q_FOLDS, select_fraction=select_fraction,
                  select_tasks=select_task or None, select_seed=select_seed, null_draws=null_draws,
                  baseline_dims=baseline_dim or None, q_mode=q_mode, seed=seed, device=device, progress=progress)
    except ValueError as err:  # train_compressor's resume hint names flags that ablate does not have
        msg = str(err)
        if "resume=False, overwrite=True" not in msg:
            raise
        raise ValueError(msg.replace("another out folder, or resume=False, overwrite=True",
                                     "another --out, or delete that run's folder in --out (ablate continues a run "
                                     "only with the same settings)").replace(
            "resume=False, overwrite=True", "another --out")) from None
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        res.table.to_csv(Path(out) / "table.csv")
        res.per_task.to_csv(Path(out) / "per_task.csv")
        res.per_task_null.to_csv(Path(out) / "per_task_null.csv")
        res.selection.to_csv(Path(out) / "selection.csv", index=False)
    typer.echo(f"{res.split!r}")
    typer.echo(res.table[["method", "out_dim", "selected_epoch", "q_report", "q_null", "q_null_std", "q_gap", "z",
                          "mse"]].to_string())
    if res.table.attrs.get("note"):
        typer.echo(res.table.attrs["note"])


def distill(
    teacher: str = typer.Argument(..., help="teacher: NeuCo CSV, exported embeddings .zarr or embedding store"),
    out: str = typer.Option(..., help="folder for teacher.npz, config.json, history.csv, checkpoints/, student.pt, "
                                      "embeddings.zarr"),
    teacher_model: Optional[str] = typer.Option(None, help="model of the teacher store (needed if it holds several)"),
    inputs: Optional[str] = typer.Option(None, help="student inputs: CSV / .zarr / store (fused), same sample ids "
                                                    "(default: the teacher vectors)"),
    prefixes: Optional[list[int]] = typer.Option(None, "--prefix", help="prefix size with a training head (repeat, "
                                                                          "increasing; default 16 32 64 128)"),
    out_dim: int = typer.Option(128, help="student embedding size"),
    hidden: int = typer.Option(512, help="student hidden width"),
    epochs: int = typer.Option(50, help="epochs"),
    batch_size: int = typer.Option(64, help="batch size"),
    lr: float = typer.Option(1e-3, help="AdamW learning rate"),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay"),
    seed: int = typer.Option(0, help="seed (init and batch order)"),
    resume: bool = typer.Option(True, help="continue from the last checkpoint in OUT"),
    overwrite: bool = typer.Option(False, help="with --no-resume: delete OUT's checkpoints first"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda ... (default: cuda when available)"),
    precision: str = typer.Option("float32", help="float32 (default) | bf16 (CUDA opt-in)"),
    threads: Optional[int] = typer.Option(None, help="CPU threads while training (default: 1 for small students)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    target: str = typer.Option("centred", help="centred (teacher minus its mean) | standardized (each teacher "
                                               "feature also scaled to unit variance)"),
    prefix_weights: Optional[list[float]] = typer.Option(None, "--prefix-weight", help="loss weight of each prefix "
                                                         "(repeat, one per --prefix; default all 1)"),
    relational: float = typer.Option(0.0, help="weight of the per-prefix pairwise-cosine term (0 = off)"),
    loss: str = typer.Option("cosine", help="cosine (1 - cos per prefix) | mse (squared error / mean squared norm)"),
) -> None:
    """Distil a Matryoshka student from TEACHER (eoembed.compress.distill): every prefix of its embedding is usable.
    Writes OUT/embeddings.zarr (float32) beside the checkpoints and prints the final cosine per prefix."""
    from eoembed.compress.matryoshka import _check_hparams, _check_loss, _check_prefixes, distill as run
    from eoembed.compress.train import export_embeddings
    check_in_path(teacher, option="TEACHER")
    if inputs is not None:
        check_in_path(inputs, option="--inputs")
    check_out_path(out, option="--out")
    check_device(device)
    check_choice("--precision", precision, ("float32", "bf16"))
    check_int("--out-dim", out_dim, 1)
    check_int("--threads", threads, 1, allow_none=True)
    ks = _check_prefixes(prefixes or (16, 32, 64, 128), out_dim)
    _check_hparams(epochs, hidden, batch_size, lr, weight_decay, seed)
    _check_loss(ks, target, prefix_weights or None, relational, loss)
    res = run(teacher, inputs, prefixes=ks, out_dim=out_dim, teacher_model=teacher_model, hidden=hidden,
              epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, out=out,
              resume=resume, overwrite=overwrite, device=device, precision=precision, threads=threads,
              progress=progress, target=target, prefix_weights=prefix_weights or None, relational=relational,
              loss=loss)
    path = export_embeddings(res.embeddings, Path(out) / "embeddings.zarr", dtype="float32", overwrite=True)
    last = res.history.iloc[-1]
    cos = ", ".join(f"k={k}: {last[f'cos/{k}']:.3f}" for k in res.prefixes)
    typer.echo(f"distilled {res.embeddings.sizes['sample']} samples -> {out_dim}-d student; cosine to the teacher "
               f"after epoch {int(last['epoch'])}: {cos}; wrote {path}")


def register(app: typer.Typer) -> None:
    """Add ``fuse``, ``train`` and ``ablate`` to the eoembed CLI."""
    app.command("fuse")(fuse)
    app.command("train")(train)
    app.command("ablate")(ablate)
    app.command("distill")(distill)
