"""NeuCo-Bench parity of evaluate(): output files and their keys, NeuCo-Bench YAML configs, exclude_file,
embedding_dim, labels DataFrame vs label folder, and NeuCo-Bench's own summary code on eoembed's output
(set NEUCO_BENCH_SRC to a NeuCo-Bench checkout to run those)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from eoembed.bench import evaluate, leaderboard
from eoembed.bench.config import read_config
from eoembed.data import read_labels
from eoembed.errors import DataError, DataFileNotFound, OutputError

sys.path.insert(0, str(Path(__file__).parent))
from neuco_reference import NEUCO_PRELUDE  # noqa: E402

# What NeuCo-Bench writes, read from its source at commit a89ba06 (github.com/embed2scale/NeuCo-Bench):
# benchmark/evaluation/results.py, save_results(): results_summary.json (``config`` is written when given, and
# main.py always gives the YAML config).
NEUCO_SUMMARY = {"experiment": str, "overall_q_score": float, "overall_acc_score": float, "task_q_scores": dict,
                 "task_acc_scores": dict, "config": dict}
# benchmark/evaluation/evaluation.py, cross_validate(): <run>/<task>/<task>_result.json; "hyperparamaters" (sic) is
# LinearFoldRunner.hyperparams (benchmark/evaluation/probes/linear.py); "q_t" only with output_fold_results: true.
NEUCO_TASK = {"q_stat": float, "mean_score": float, "std_dev": float, "hyperparamaters": dict}
NEUCO_LINEAR_HYPER = {"epochs": int, "learning_rate": float, "batch_size": int}

N, D = 150, 12
NEUCO_SRC = os.environ.get("NEUCO_BENCH_SRC")
needs_neuco = pytest.mark.skipif(
    not NEUCO_SRC or not (Path(NEUCO_SRC) / "benchmark" / "evaluation" / "results.py").is_file(),
    reason="NeuCo-Bench's source is not available: set NEUCO_BENCH_SRC to a NeuCo-Bench checkout (the folder "
           "holding benchmark/evaluation/results.py) to run NeuCo-Bench's own code on eoembed's output")


@pytest.fixture(scope="module")
def neuco_data(tmp_path_factory):
    """A NeuCo-Bench embedding CSV and label folder (ids in shuffled order) in a temporary folder."""
    d = tmp_path_factory.mktemp("neuco")
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N, D))
    ids = np.array([f"s{i:03d}" for i in rng.permutation(N)])
    emb = pd.DataFrame(X, columns=[str(i) for i in range(D)])
    emb.insert(0, "id", ids)
    emb.to_csv(d / "emb.csv", index=False)
    (d / "labels").mkdir()
    order = rng.permutation(N)                         # the two files list their ids in different orders
    pd.DataFrame({"id": ids, "label": X @ rng.standard_normal(D)}).to_csv(d / "labels" / "lin__regression.csv",
                                                                          index=False)
    pd.DataFrame({"id": ids[order], "label": (X[order, 0] > 0).astype(int)}).to_csv(
        d / "labels" / "bin__classification.csv", index=False)
    return d, X, ids


def _yaml(path: Path, **over) -> Path:
    cfg = {"k_folds": 3, "probe_type": "linear",
           "probe_params": {"batch_size": 64, "epochs": 2, "learning_rate": 0.001, "device": "cpu"},
           "embedding_dim": None, "standardize_embeddings": True, "normalize_labels": True, "enable_plots": False,
           "update_leaderboard": False, "store_probes": False, "task_filter": None}
    cfg.update(over)
    import yaml

    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _check_types(obj: dict, spec: dict, where: str) -> None:
    assert set(obj) == set(spec), f"{where}: keys {sorted(obj)} != NeuCo-Bench's {sorted(spec)}"
    for k, typ in spec.items():
        assert isinstance(obj[k], typ) and not isinstance(obj[k], bool), f"{where}[{k!r}] = {obj[k]!r} is not {typ}"


# ------------------------------------------------------------------------------------------------ output schema
def test_output_files_have_exactly_neuco_keys(tmp_path, neuco_data):
    d, _, _ = neuco_data
    cfg = _yaml(tmp_path / "c.yaml", output_fold_results=True)
    run = tmp_path / "results" / "dev" / "mine"
    res = evaluate(d / "emb.csv", d / "labels", config=cfg, out=run, progress=False)
    summ = json.loads((run / "results_summary.json").read_text())
    _check_types(summ, NEUCO_SUMMARY, "results_summary.json")
    assert list(summ) == list(NEUCO_SUMMARY)                      # NeuCo-Bench's key order too
    assert summ["experiment"] == "mine" and summ == res.summary
    assert list(summ["task_q_scores"]) == ["bin", "lin"] == list(summ["task_acc_scores"])
    assert all(isinstance(v, float) for v in [*summ["task_q_scores"].values(), *summ["task_acc_scores"].values()])
    assert summ["overall_q_score"] == pytest.approx(np.mean(list(summ["task_q_scores"].values())))
    for t in ("bin", "lin"):
        per = json.loads((run / t / f"{t}_result.json").read_text())
        q_t = per.pop("q_t")                                      # present because output_fold_results: true
        _check_types(per, NEUCO_TASK, f"{t}_result.json")
        _check_types(per["hyperparamaters"], NEUCO_LINEAR_HYPER, "hyperparamaters")
        assert len(q_t) == 3 and all(isinstance(v, float) for v in q_t)
        assert per["q_stat"] == pytest.approx(2 * np.mean(q_t) / (0.02 + np.std(q_t)))
        assert per["q_stat"] == summ["task_q_scores"][t] and per["mean_score"] == summ["task_acc_scores"][t]
    details = json.loads((run / "eoembed_report.json").read_text())
    assert details["mode"] == "compat" and details["neuco_compatible"] is True
    assert details["settings"]["k_folds"] == 3 and details["report"]["n_embeddings_in"] == N
    res2 = evaluate(d / "emb.csv", d / "labels", folds=3, epochs=2, out=tmp_path / "plain", progress=False)
    per = json.loads((tmp_path / "plain" / "lin" / "lin_result.json").read_text())
    _check_types(per, NEUCO_TASK, "lin_result.json (default config)")  # NeuCo-Bench default: no q_t
    assert res2.summary["config"]["probe_params"] == {"batch_size": 64, "epochs": 2, "learning_rate": 0.001}


def test_experiment_name_and_write_result(tmp_path, neuco_data):
    from eoembed.bench import write_result

    d, _, _ = neuco_data
    res = evaluate(d / "emb.csv", d / "labels", folds=2, epochs=1, progress=False, experiment="method_a")
    assert res.summary["experiment"] == "method_a"
    write_result(res, tmp_path / "other_name")
    assert json.loads((tmp_path / "other_name" / "results_summary.json").read_text())["experiment"] == "method_a"
    res = evaluate(d / "emb.csv", d / "labels", folds=2, epochs=1, progress=False)
    assert res.summary["experiment"] == "emb"                      # no out: the embedding file's stem
    write_result(res, tmp_path / "run_b")
    assert json.loads((tmp_path / "run_b" / "results_summary.json").read_text())["experiment"] == "run_b"


# ------------------------------------------------------------------------------------------------ NeuCo options
def test_yaml_config_equals_arguments_and_explicit_wins(tmp_path, neuco_data):
    d, _, _ = neuco_data
    cfg = _yaml(tmp_path / "c.yaml", task_filter=["lin"])
    by_cfg = evaluate(d / "emb.csv", d / "labels", config=cfg, progress=False)
    by_args = evaluate(d / "emb.csv", d / "labels", folds=3, epochs=2, tasks=["lin"], device="cpu", progress=False)
    pd.testing.assert_frame_equal(by_cfg.per_task, by_args.per_task)
    pd.testing.assert_frame_equal(by_cfg.folds, by_args.folds)
    written = read_config(cfg)
    written["probe_params"].pop("device")                          # NeuCo-Bench drops it before writing too
    assert by_cfg.summary["config"] == written
    over = evaluate(d / "emb.csv", d / "labels", config=cfg, folds=4, tasks=["bin", "lin"], progress=False)
    assert over.folds.groupby("task").size().to_dict() == {"bin": 4, "lin": 4}
    assert over.summary["config"]["k_folds"] == 4 and over.summary["config"]["task_filter"] == ["bin", "lin"]
    from_dict = evaluate(d / "emb.csv", d / "labels", config={"k_folds": 3, "task_filter": ["lin"],
                                                             "probe_params": {"epochs": 2}}, progress=False)
    pd.testing.assert_frame_equal(from_dict.per_task, by_cfg.per_task)


def test_exclude_file_equals_dropping_rows(tmp_path, neuco_data):
    d, X, ids = neuco_data
    drop = list(ids[:5])
    (tmp_path / "bad_ids.txt").write_text("\n".join([f"  {drop[0]} ", "", *drop[1:], "not_an_id"]) + "\n")
    res = evaluate(d / "emb.csv", d / "labels", folds=3, epochs=2, exclude_file=tmp_path / "bad_ids.txt",
                   progress=False)
    keep = ~np.isin(ids, drop)
    ref = evaluate(X[keep], d / "labels", ids=ids[keep], folds=3, epochs=2, progress=False)
    pd.testing.assert_frame_equal(res.per_task, ref.per_task)
    ex = res.report["excluded"]
    assert ex["count"] == 5 and sorted(ex["ids"]) == sorted(drop) and ex["not_in_embeddings"]["ids"] == ["not_an_id"]
    assert res.report["labels_without_embedding"] == {"bin": 5, "lin": 5}
    assert res.details["settings"]["exclude_file"] == str(tmp_path / "bad_ids.txt")
    assert "exclude_file" not in res.summary["config"]              # NeuCo-Bench: an argument, not a config key
    via_cfg = evaluate(d / "emb.csv", d / "labels", config={"k_folds": 3, "probe_params": {"epochs": 2},
                                                            "exclude_file": str(tmp_path / "bad_ids.txt")},
                       progress=False)
    pd.testing.assert_frame_equal(via_cfg.per_task, res.per_task)
    with pytest.raises(DataFileNotFound, match="missing.txt"):
        evaluate(d / "emb.csv", d / "labels", exclude_file=tmp_path / "missing.txt", progress=False)


def test_embedding_dim_zero_pads_before_standardising(neuco_data):
    d, X, ids = neuco_data
    res = evaluate(d / "emb.csv", d / "labels", folds=3, epochs=2, embedding_dim=D + 4, progress=False)
    padded = np.hstack([X, np.zeros((N, 4))])
    ref = evaluate(padded, d / "labels", ids=ids, folds=3, epochs=2, progress=False)
    pd.testing.assert_frame_equal(res.per_task, ref.per_task)
    assert res.report["zero_padded"] == {"from": D, "to": D + 4} and res.report["embedding_dim"] == D + 4
    assert res.report["standardization"]["mean"] == pytest.approx(padded.mean())
    same = evaluate(d / "emb.csv", d / "labels", folds=3, epochs=2, embedding_dim=D, progress=False)
    assert "zero_padded" not in same.report
    with pytest.raises(DataError, match=f"{D} columns but embedding_dim={D - 1}"):
        evaluate(d / "emb.csv", d / "labels", embedding_dim=D - 1, progress=False)


@pytest.mark.parametrize("cfg,match", [
    ({"probe_type": "svm"}, "probe_type svm needs `probe_params`"),
    ({"probe_type": "mlp"}, "probe_type 'mlp'"),
    ({"k_fold": 40}, r"unknown option\(s\) \['k_fold'\]"),
    ({"k_folds": 1}, "`k_folds` must be an integer >= 2"),
    ({"k_folds": True}, "`k_folds` must be an integer"),
    ({"probe_params": {"epochs": 0}}, r"`probe_params.epochs` must be an integer >= 1"),
    ({"probe_params": {"momentum": 0.9}}, r"unknown probe_params option\(s\) \['momentum'\]"),
    ({"probe_params": {"learning_rate": "fast"}}, "learning_rate` must be a positive number"),
    ({"probe_params": {"device": "gpu"}}, "`probe_params.device` must be"),
    ({"embedding_dim": "1024"}, "`embedding_dim` must be an integer"),
    ({"enable_plots": True}, "`enable_plots: true` is not supported"),
    ({"store_probes": True}, "`store_probes: true` is not supported"),
    ({"update_leaderboard": True}, "`update_leaderboard: true` is not supported"),
    ({"normalize_labels": "yes"}, "`normalize_labels` must be true or false"),
    ({"task_filter": "lin"}, "`task_filter` must be null or a non-empty list"),
    (["k_folds", 3], "must be a mapping"),
])
def test_bad_config_names_the_option(tmp_path, neuco_data, monkeypatch, cfg, match):
    import eoembed.bench.core as core

    d, _, _ = neuco_data
    monkeypatch.setattr(core, "prepare", lambda *a, **k: pytest.fail("data read before the config was checked"))
    with pytest.raises(DataError, match=match):
        evaluate(d / "emb.csv", d / "labels", config=cfg, progress=False)


def test_bad_yaml_files(tmp_path, neuco_data):
    d, _, _ = neuco_data
    with pytest.raises(DataError, match="'gpu' is not a torch device"):
        evaluate(d / "emb.csv", d / "labels", device="gpu", progress=False)
    with pytest.raises(DataFileNotFound, match="nope.yaml"):
        evaluate(d / "emb.csv", d / "labels", config=tmp_path / "nope.yaml", progress=False)
    (tmp_path / "broken.yaml").write_text("k_folds: [3\n")
    with pytest.raises(DataError, match="broken.yaml.*not valid YAML"):
        evaluate(d / "emb.csv", d / "labels", config=tmp_path / "broken.yaml", progress=False)


def test_out_checked_before_any_work(tmp_path, neuco_data, monkeypatch):
    import eoembed.bench.core as core

    d, _, _ = neuco_data
    monkeypatch.setattr(core, "prepare", lambda *a, **k: pytest.fail("work started before out was checked"))
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError, match="a_file' is a file, not a folder"):
        evaluate(d / "emb.csv", d / "labels", out=tmp_path / "a_file", progress=False)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        evaluate(d / "emb.csv", d / "labels", out=tmp_path / "a_file" / "run", progress=False)
    import eoembed.checks as checks

    monkeypatch.setattr(checks.os, "access", lambda *a, **k: False)   # a read-only place (tests may run as root)
    with pytest.raises(OutputError, match="read-only"):
        evaluate(d / "emb.csv", d / "labels", out=tmp_path / "new" / "run", progress=False)


def test_cli_config_and_options(tmp_path, neuco_data):
    from eoembed.cli import app

    d, _, ids = neuco_data
    cfg = _yaml(tmp_path / "sample_config_linear.yaml", embedding_dim=D + 2)
    (tmp_path / "ex.txt").write_text(ids[0] + "\n")
    out = tmp_path / "results" / "dev" / "cli_run"
    r = CliRunner().invoke(app, ["bench", str(d / "emb.csv"), "--labels", str(d / "labels"), "--out", str(out),
                                 "--config", str(cfg), "--exclude-file", str(tmp_path / "ex.txt"), "--folds", "2",
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    summ = json.loads((out / "results_summary.json").read_text())
    assert summ["config"]["k_folds"] == 2 and summ["config"]["embedding_dim"] == D + 2
    assert "excluded=1" in r.output
    ref = evaluate(d / "emb.csv", d / "labels", config=cfg, folds=2, exclude_file=tmp_path / "ex.txt",
                   progress=False)
    assert summ["task_q_scores"] == pytest.approx(ref.summary["task_q_scores"], rel=0, abs=0)
    bad = CliRunner().invoke(app, ["bench", str(d / "emb.csv"), "--labels", str(d / "labels"), "--out",
                                   str(tmp_path / "x"), "--config", str(_yaml(tmp_path / "svm.yaml",
                                                                              probe_type="svm"))])
    assert bad.exit_code != 0 and "svm" in str(bad.exception) + bad.output


# ------------------------------------------------------------------------------------------------ DataFrame vs folder
def test_labels_dataframe_and_folder_give_the_same_scores(sample_root):
    folder = sample_root / "labels"
    lab = read_labels(folder)
    rng = np.random.default_rng(0)
    emb = pd.DataFrame(rng.standard_normal((len(lab), 16)), index=lab.index[rng.permutation(len(lab))])
    kw = dict(folds=5, epochs=3, progress=False)
    a = evaluate(emb, folder, **kw)
    b = evaluate(emb, lab, **kw)
    pd.testing.assert_frame_equal(a.per_task, b.per_task, check_exact=True)
    pd.testing.assert_frame_equal(a.folds, b.folds, check_exact=True)
    assert a.overall_q == b.overall_q
    old = lab.sort_index()                                         # what read_labels used to return
    old.attrs = {"task_types": lab.attrs["task_types"]}
    assert not evaluate(emb, old, **kw).folds["score"].equals(a.folds["score"])   # other splits, other scores
    # the rows are kept in file order, not sorted (sorting them changed every split)
    first = pd.read_csv(next(iter(sorted(folder.glob("*.csv")))), dtype={"id": str})
    assert list(lab.index) == list(first["id"]) and not lab.index.is_monotonic_increasing


def test_labels_dataframe_keeps_per_task_file_order(neuco_data):
    d, X, ids = neuco_data
    lab = read_labels(d / "labels")
    assert list(lab.attrs["label_order"]) == ["lin"]                # lin lists its ids in another order than bin
    kw = dict(ids=ids, folds=3, epochs=2, progress=False)
    a = evaluate(X, d / "labels", **kw)
    pd.testing.assert_frame_equal(a.per_task, evaluate(X, lab, **kw).per_task, check_exact=True)
    sub = evaluate(X, lab[["bin"]], **kw)                          # a column subset keeps the order too
    pd.testing.assert_frame_equal(sub.per_task.loc[["bin"]], a.per_task.loc[["bin"]], check_exact=True)


# ----------------------------------------------------------------------------------------- NeuCo-Bench's own code
def _neuco_results_module():
    spec = importlib.util.spec_from_file_location(
        "neuco_bench_results", Path(NEUCO_SRC) / "benchmark" / "evaluation" / "results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@needs_neuco
def test_neuco_summary_code_reads_eoembed_runs(tmp_path, neuco_data, capsys):
    d, X, ids = neuco_data
    nb = _neuco_results_module()
    runs = {
        "raw": evaluate(d / "emb.csv", d / "labels", folds=3, epochs=2, out=tmp_path / "res" / "dev" / "raw",
                        progress=False),
        "noise": evaluate(np.random.default_rng(1).standard_normal((N, D)), d / "labels", ids=ids, folds=3,
                          epochs=2, out=tmp_path / "res" / "dev" / "noise", progress=False),
    }
    df = nb.aggregate_results(tmp_path / "res", "dev").set_index("experiment").sort_index()
    assert list(df.index) == ["noise", "raw"]
    for name, r in runs.items():
        for t in ("bin", "lin"):
            assert df.loc[name, f"q::{t}"] == r.per_task.loc[t, "q_stat"]
            assert df.loc[name, f"acc::{t}"] == r.per_task.loc[t, "mean_score"]
        assert df.loc[name, "overall_q_score"] == r.overall_q
    q_cols = ["q::bin", "q::lin"]
    board = nb.compute_leaderboard(df.reset_index(), q_cols).set_index("experiment")
    ours = leaderboard(pd.DataFrame({k: r.per_task["q_stat"] for k, r in runs.items()})).set_index("method")
    for name in runs:
        assert board.loc[name, "weighted_score"] == pytest.approx(ours.loc[name, "weighted_score"])
        assert board.loc[name, "aggregated_rank"] == ours.loc[name, "aggregated_rank"]
    nb.summarize_runs(tmp_path / "res", "dev")
    assert "Leaderboard Summary" in capsys.readouterr().out
    (csv,) = (tmp_path / "res" / "leaderboards" / "dev").glob("leaderboard_*.csv")
    assert set(pd.read_csv(csv)["experiment"]) == {"raw", "noise"}


_RUN_NEUCO = NEUCO_PRELUDE + textwrap.dedent("""
    import sys, types
    from pathlib import Path
    src, emb, labels, cfg_path, out, phase, method, exclude = sys.argv[1:9]
    sys.path.insert(0, str(Path(src) / "benchmark"))
    import yaml
    from evaluation.config import check_config
    from evaluation.evaluation import evaluate
    cfg = yaml.safe_load(Path(cfg_path).read_text())
    check_config(cfg)
    evaluate(submission_file=Path(emb), annotation_path=Path(labels), method_name=method, output_dir=Path(out),
             phase=phase, config=cfg, exclude_file=Path(exclude))
""")


@needs_neuco
@pytest.mark.slow
def test_same_files_as_neuco_bench_itself(tmp_path, neuco_data):
    """NeuCo-Bench's own evaluate() (in a subprocess: it sets torch's global deterministic flag) and eoembed on the
    same data and YAML config write the same files with the same keys, types and config."""
    d, _, ids = neuco_data
    for mod in ("torchmetrics", "tqdm", "matplotlib", "yaml", "scipy"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"NeuCo-Bench's linear probe needs {mod!r}, which is not installed")
    cfg = _yaml(tmp_path / "cfg.yaml", embedding_dim=D + 3, output_fold_results=True)
    (tmp_path / "ex.txt").write_text(f"{ids[0]}\n{ids[1]}\n")
    proc = subprocess.run([sys.executable, "-c", _RUN_NEUCO, NEUCO_SRC, str(d / "emb.csv"), str(d / "labels"),
                           str(cfg), str(tmp_path / "res"), "dev", "neuco", str(tmp_path / "ex.txt")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (theirs,) = (tmp_path / "res" / "dev").iterdir()
    mine = tmp_path / "res" / "dev" / "eoembed"
    evaluate(d / "emb.csv", d / "labels", config=cfg, exclude_file=tmp_path / "ex.txt", out=mine, progress=False)
    a = json.loads((theirs / "results_summary.json").read_text())
    b = json.loads((mine / "results_summary.json").read_text())
    assert list(a) == list(b) and a["experiment"] == theirs.name and b["experiment"] == "eoembed"
    assert {k: type(v) for k, v in a.items()} == {k: type(v) for k, v in b.items()}
    assert list(a["task_q_scores"]) == list(b["task_q_scores"])
    assert a["config"] == b["config"]
    for t in ("bin", "lin"):
        x = json.loads((theirs / t / f"{t}_result.json").read_text())
        y = json.loads((mine / t / f"{t}_result.json").read_text())
        assert list(x) == list(y) and x["hyperparamaters"] == y["hyperparamaters"]
        assert {k: type(v) for k, v in x.items()} == {k: type(v) for k, v in y.items()}
        assert len(x["q_t"]) == len(y["q_t"]) == 3
    nb = _neuco_results_module()
    df = nb.aggregate_results(tmp_path / "res", "dev")
    assert sorted(df["experiment"]) == sorted([theirs.name, "eoembed"]) and df.notna().all().all()


@needs_neuco
def test_neuco_sample_configs(neuco_data):
    d, _, _ = neuco_data
    configs = Path(NEUCO_SRC) / "configs"
    cfg = read_config(configs / "sample_config_linear.yaml")
    assert cfg["k_folds"] == 40 and cfg["probe_params"]["epochs"] == 10
    res = evaluate(d / "emb.csv", d / "labels", config=configs / "sample_config_linear.yaml", folds=2, epochs=1,
                   progress=False)                                # the sample config with a quick override
    assert res.folds.groupby("task").size().to_dict() == {"bin": 2, "lin": 2}
    svm = read_config(configs / "sample_config_svm.yaml")      # probe_type svm: eoembed.bench.svm
    assert svm["probe_params"]["opt_params"]["n_iter"] == 50
    svm["probe_params"]["opt_params"]["n_iter"] = 2
    res = evaluate(d / "emb.csv", d / "labels", config=svm, folds=2, progress=False)
    assert res.summary["config"]["probe_type"] == "svm" and res.details["settings"]["n_iter"] == 2
