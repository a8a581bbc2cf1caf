"""``eoembed bench``: evaluate a NeuCo embedding CSV against a label folder."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command to the eoembed CLI."""

    @app.command("bench")
    def bench(
        embeddings: Path = typer.Argument(..., help="NeuCo embedding CSV (id,0..D-1)."),
        labels: Path = typer.Option(..., "--labels", help="Folder of <task>__<type>.csv label files."),
        out: Path = typer.Option(..., "--out", help="Output folder (results_summary.json, per-task JSON, CSV)."),
        folds: Optional[int] = typer.Option(None, "--folds", help="Number of folds (90/10 ShuffleSplit; group / "
                                            "spatial: 10% of the groups / blocks held out each; default: the "
                                            "config's k_folds, else 40 as NeuCo-Bench; --split fixed: one fold)."),
        mode: str = typer.Option("compat", "--mode", help="compat (NeuCo-Bench protocol) | ridge (NOT NeuCo-Bench)."),
        tasks: Optional[list[str]] = typer.Option(None, "--tasks", help="Tasks to run (repeat or comma-separate; "
                                                  "default: the config's task_filter, else all)."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Probe epochs, compat mode (default: the "
                                             "config's probe_params.epochs, else 10)."),
        seed: int = typer.Option(42, "--seed", help="Seed of probe initialisation and batch order."),
        split_seed: int = typer.Option(42, "--split-seed", help="random_state of the ShuffleSplit (NeuCo-Bench: 42)."),
        metric: str = typer.Option("neuco", "--metric", help="neuco (R2/F1) | tessera (chance-adjusted)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda (default: the config's "
                                             "probe_params.device, else cuda if available)."),
        config: Optional[Path] = typer.Option(None, "--config", help="NeuCo-Bench YAML config (e.g. "
                                              "sample_config_linear.yaml); flags given here win over it."),
        exclude_file: Optional[Path] = typer.Option(None, "--exclude-file", help="Text file of embedding ids to "
                                                    "leave out, one per line (NeuCo-Bench --exclude_file)."),
        embedding_dim: Optional[int] = typer.Option(None, "--embedding-dim", help="Expected embedding size: fewer "
                                                    "columns are zero-padded, more are an error (NeuCo-Bench)."),
        experiment: Optional[str] = typer.Option(None, "--experiment", help="Run name in results_summary.json "
                                                 "(default: the name of --out)."),
        probe: Optional[str] = typer.Option(None, "--probe", help="linear | svm (NeuCo-Bench's SVM probe; default: "
                                            "the config's probe_type, else linear)."),
        svm_select: str = typer.Option("max", "--svm-select", help="svm: max (NeuCo-Bench: per-fold maximum over "
                                       "candidates) | inner (honest: chosen on inner splits of the training part)."),
        svm_search: str = typer.Option("random", "--svm-search", help="svm: random (seeded sample of NeuCo-Bench's "
                                       "search space) | bayes (its BayesSearchCV sequence; needs scikit-optimize)."),
        svm_solver: str = typer.Option("auto", "--svm-solver", help="svm: libsvm (every fold) | active-set "
                                       "(folds solved exactly from libsvm's fit of a candidate's first fold, "
                                       "checked by libsvm's stopping rule) | auto (active-set for random search, "
                                       "libsvm for bayes)."),
        split: str = typer.Option("shuffle", "--split", help="shuffle (NeuCo-Bench: K random 90/10 folds) | fixed "
                                  "(one fold: --test-ids) | group (--groups; 10% of groups held out per fold) | "
                                  "spatial (blocks of --split-km km, else --split-clusters KMeans clusters of "
                                  "lat/lon)."),
        split_km: Optional[float] = typer.Option(None, "--split-km", help="spatial: block size in km (default: "
                                                 "KMeans clusters of lat/lon)."),
        split_clusters: Optional[int] = typer.Option(None, "--split-clusters", help="spatial without --split-km: "
                                                     "number of KMeans clusters (default 20)."),
        groups: Optional[str] = typer.Option(None, "--groups", help="group: a CSV 'id,<group>' (FILE.csv:COLUMN "
                                             "picks a column) or a column name of --meta / the meta.csv beside "
                                             "--labels."),
        meta: Optional[Path] = typer.Option(None, "--meta", help="Per-sample table (CSV id,lat,lon,... or a sample "
                                            "root with meta.csv) for --split spatial / --groups COLUMN (default: "
                                            "the meta.csv beside the label folder)."),
        train_ids: Optional[Path] = typer.Option(None, "--train-ids", help="fixed: text file of training ids, one "
                                                 "per line (default: every labelled sample not in --test-ids)."),
        test_ids: Optional[Path] = typer.Option(None, "--test-ids", help="fixed: text file of held-out ids, one per "
                                                "line (e.g. a benchmark's official test split)."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Evaluate embeddings with NeuCo-Bench linear (or, --probe svm, SVM) probes and print Q per task.

        --out is written like one NeuCo-Bench run folder (<output_dir>/<phase>/<experiment>): NeuCo-Bench's
        summarize_runs(output_dir, phase) reads it unchanged."""
        from eoembed.checks import check_choice, check_device, check_in_path, check_out_path

        check_in_path(embeddings, option="EMBEDDINGS", kind="file")
        check_in_path(labels, option="--labels", kind="dir")
        if config is not None:
            check_in_path(config, option="--config", kind="file")
        if exclude_file is not None:
            check_in_path(exclude_file, option="--exclude-file", kind="file")
        for opt, path in (("--meta", meta), ("--train-ids", train_ids), ("--test-ids", test_ids)):
            if path is not None:
                check_in_path(path, option=opt, kind="file" if opt != "--meta" else "any")
        check_out_path(out, option="--out")
        check_choice("--mode", mode, ("compat", "ridge"))
        check_choice("--split", split, ("shuffle", "fixed", "group", "spatial"))
        check_choice("--metric", metric, ("neuco", "tessera"))
        if probe is not None:
            check_choice("--probe", probe, ("linear", "svm"))
        check_choice("--svm-select", svm_select, ("max", "inner"))
        check_choice("--svm-search", svm_search, ("random", "bayes"))
        check_choice("--svm-solver", svm_solver, ("auto", "libsvm", "active-set"))
        check_device(device)
        from eoembed.bench import evaluate

        task_list = [t for item in tasks for t in item.split(",") if t] if tasks else None
        res = evaluate(embeddings, labels, folds=folds, mode=mode, seed=seed, epochs=epochs, tasks=task_list,
                       out=out, device=device, progress=progress, metric=metric, split_seed=split_seed,
                       config=config, exclude_file=exclude_file, embedding_dim=embedding_dim, experiment=experiment,
                       probe=probe, svm_select=svm_select, svm_search=svm_search, svm_solver=svm_solver,
                       split=split, split_km=split_km, split_clusters=split_clusters, groups=groups, meta=meta,
                       train_ids=train_ids, test_ids=test_ids)
        typer.echo(res.per_task.to_string(float_format=lambda v: f"{v:.4f}"))
        rep = res.report
        extra = f" excluded={rep['excluded']['count']}" if "excluded" in rep else ""
        typer.echo(f"overall_q_score={res.overall_q:.4f} overall_acc_score={res.overall_acc:.4f} "
                   f"dropped_no_label={rep['dropped_no_label']['count']} nan_filled_rows={rep['nan_filled']['rows']}"
                   f"{extra}")
        sp = res.details["settings"]["split"]
        typer.echo("split: " + ", ".join(f"{k}={v}" for k, v in sp.items() if k not in ("per_task", "unassigned")))
        typer.echo(f"written to {out}")
