"""eoembed.scaling: compute formula, sweep runner (resume after SIGKILL, failures, Dask), iso-FLOP fits that
recover planted exponents within their intervals, bad inputs, plots and CLI."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import eoembed.scaling as sc
from eoembed.errors import DataError, OutputError

REPO = Path(__file__).resolve().parents[1]
BUDGETS = np.logspace(14, 18, 5)
N_GRID = np.logspace(4.5, 7.5, 13)


@pytest.fixture(scope="module")
def planted_table() -> pd.DataFrame:
    """A synthetic iso-FLOP sweep (5 budgets x 13 encoder sizes, 1% loss noise) in the sweep table's columns
    (the runner itself is tested below; here its per-run parquet rewrite would only cost time)."""
    return pd.DataFrame([{"run_id": sc.run_id(c), "status": "ok", "cfg_flops": c["flops"], **sc.synthetic_run(c)}
                         for c in sc.isoflop_configs(BUDGETS, N_GRID)])


# ------------------------------------------------------------------------------------------------ compute
def test_flops_formula_units_and_inverse():
    assert sc.flops(1e6, 1e5, 1e4) == pytest.approx(12 * 1e4 * (1e6 * 240 + 1e5))
    assert sc.flops(2, 0, 3, l_ref=10) == 12 * 3 * 20  # no projector is allowed
    c = sc.flops(np.array([1e5, 1e6]), 1e4, np.array([1e3, 1e7]), 16)
    assert c.shape == (2,) and sc.data_for_flops(c, np.array([1e5, 1e6]), 1e4, 16) == pytest.approx([1e3, 1e7])


@pytest.mark.parametrize("kw, name", [({"n_enc": 0}, "n_enc"), ({"d": -5}, "d"), ({"n_proj": -1}, "n_proj"),
                                      ({"l_ref": 0}, "l_ref"), ({"d": float("nan")}, "d")])
def test_flops_rejects_non_positive_sizes(kw, name):
    args = {"n_enc": 1e5, "n_proj": 1e3, "d": 1e4, **kw}
    with pytest.raises(DataError, match=f"{name} must be finite"):
        sc.flops(**args)


# ------------------------------------------------------------------------------------------- planted laws
@pytest.mark.parametrize("y, key", [("final_loss", "loss"), ("score", "score")])
def test_fits_recover_planted_exponents(planted_table, y, key):
    planted = sc.planted_exponents()
    fit = sc.scaling_laws(planted_table, y=y, budget="cfg_flops", n_boot=100)
    assert fit.curves["valid"].sum() >= 4
    for t in ("n_opt", "d_opt"):
        e = fit.exponents.loc[t]
        p = planted[f"{key}_{t}"]
        assert e["ci_low"] <= p <= e["ci_high"], (t, p, e.to_dict())
        assert abs(e["exponent"] - p) < 0.05
        assert e["lobo_low"] <= e["exponent"] <= e["lobo_high"]
        assert e["n_boot"] >= 90
    assert fit.exponents.loc["n_opt", "exponent"] + fit.exponents.loc["d_opt", "exponent"] == pytest.approx(1, 0.02)


def test_vertices_match_the_analytic_optimum_without_noise(tmp_path):
    configs = sc.isoflop_configs(BUDGETS[:3], N_GRID, noise=0.0)
    table = sc.sweep(configs, tmp_path, run_fn=sc.synthetic_run, progress=False)
    curves = sc.fit_isoflop(tmp_path, budget="cfg_flops")  # the sweep folder works as the table
    n_true, _ = sc.planted_optimum(curves["flops"])
    assert np.abs(np.log10(curves["n_opt"] / n_true)).max() < 0.05  # within 12% of the exact optimum
    by_d = sc.fit_isoflop(table, x="n_pixels", budget="cfg_flops")  # the same optimum seen along the data axis
    assert np.abs(np.log10(by_d["n_opt"] / n_true)).max() < 0.1
    d_law = sc.scaling_laws(table, x="n_pixels", budget="cfg_flops", targets=("x_opt",), n_boot=0).exponents
    assert list(d_law.index) == ["x_opt"] and d_law.loc["x_opt", "exponent"] == pytest.approx(0.64, abs=0.05)


def test_unwindowed_fit_is_biased_windowed_is_not(planted_table):
    """The quadratic is a local approximation: over 3 decades of sizes its vertex drifts, near the best run not."""
    p = sc.planted_exponents()["loss_n_opt"]
    wide = sc.scaling_laws(planted_table, budget="cfg_flops", window=None, n_boot=0).exponents.loc["n_opt"]
    near = sc.scaling_laws(planted_table, budget="cfg_flops", window=1.0, n_boot=0).exponents.loc["n_opt"]
    assert abs(near["exponent"] - p) < abs(wide["exponent"] - p)


def test_buckets_by_width_group_a_factorial_grid():
    rows = [sc.synthetic_run({"n_enc": n, "n_pixels": d}) for n in np.logspace(4, 7, 13) for d in np.logspace(4, 8, 17)]
    runs = sc.isoflop_buckets(pd.DataFrame(rows), width=0.25)
    spread = runs.groupby("bucket")["flops"].agg(lambda c: np.log10(c.max() / c.min()))
    assert runs["bucket"].nunique() > 10 and (spread <= 0.25 + 1e-9).all()
    with pytest.warns(UserWarning, match="without a usable vertex.*distinct sizes"):  # the grid's corners
        fit = sc.scaling_laws(pd.DataFrame(rows), width=0.25, n_boot=20)
    assert fit.curves["valid"].sum() >= 3 and np.isfinite(fit.exponents.loc["n_opt", "exponent"])


def test_loss_score_correlation():
    rng = np.random.default_rng(0)
    loss = rng.uniform(1, 2, 60)
    t = pd.DataFrame({"final_loss": loss, "score": -loss + 0.05 * rng.standard_normal(60),
                      "n_params_enc": 1e5, "n_params_proj": 1e3, "n_pixels": np.repeat([1e4, 1e6], 30)})
    corr = sc.loss_score_correlation(t)
    assert list(corr.index) == ["all", f"{corr.index[1]}", f"{corr.index[2]}"] and corr.loc["all", "n"] == 60
    assert corr["pearson_r"].max() < -0.9
    t["score"] = rng.standard_normal(60)
    assert abs(sc.loss_score_correlation(t, by_bucket=False).loc["all", "pearson_r"]) < 0.4


# ------------------------------------------------------------------------------------------- bad inputs
def test_one_bucket_is_a_clear_error():
    rows = [sc.synthetic_run({"n_enc": n, "flops": 1e15}) for n in np.logspace(4, 6, 5)]
    with pytest.raises(DataError, match="one iso-FLOP bucket.*>= 2 compute budgets"):
        sc.scaling_laws(pd.DataFrame(rows))


def test_nan_losses_raise_or_are_omitted_with_a_count(planted_table):
    t = planted_table.copy()
    t.loc[3, "final_loss"] = np.nan
    with pytest.raises(DataError, match=f"NaN/inf in \\['final_loss'\\]: {t.loc[3, 'run_id']}.*nan_policy='omit'"):
        sc.scaling_laws(t, budget="cfg_flops", n_boot=0)
    with pytest.warns(UserWarning, match="left out 1 run"):
        fit = sc.scaling_laws(t, budget="cfg_flops", n_boot=0, nan_policy="omit")
    assert len(fit.runs) == len(t) - 1


def test_non_positive_sizes_in_a_table_are_an_error(planted_table):
    t = planted_table.copy()
    t.loc[5, "n_pixels"] = 0
    with pytest.raises(DataError, match=f"n_pixels <= 0: {t.loc[5, 'run_id']}"):
        sc.fit_isoflop(t)
    with pytest.raises(DataError, match="goal='min' or 'max'"):
        sc.fit_isoflop(planted_table, y="seconds")
    with pytest.raises(DataError, match="lacks column"):
        sc.fit_isoflop(planted_table.drop(columns="score"), y="score")


def test_buckets_without_a_vertex_are_reported_not_fitted(planted_table):
    small = planted_table[(planted_table["n_params_enc"] < 1.2e5) & (planted_table["cfg_flops"] >= 1e15)]
    # every optimum (>= 5e5 parameters) is above these sizes
    curves = sc.fit_isoflop(small, budget="cfg_flops")
    assert not curves["valid"].any() and curves["reason"].str.contains("outside|convex|concave|sizes").all()
    with pytest.raises(DataError, match="needs vertices in >= 2 iso-FLOP buckets"):
        sc.fit_power_law(curves)


@pytest.mark.parametrize("grid, match", [({}, "grid is empty"), ({"n_enc": []}, "axis 'n_enc' has no values"),
                                         ([{"n_enc": 1}, {"n_enc": 1}], "duplicate config"),
                                         ("n_enc=1", "grid must be"), ({"n_enc": [object()]}, "cannot be recorded")])
def test_bad_grids(tmp_path, grid, match):
    with pytest.raises(DataError, match=match):
        sc.sweep(grid, tmp_path, run_fn=sc.synthetic_run, progress=False)


def test_expand_grid_is_a_cartesian_product_and_ids_are_stable():
    configs = sc.expand_grid({"n_enc": [1e4, 1e5], "n_proj": [64, 128], "n_pixels": np.array([1e3, 1e4, 1e5]),
                              "seed": 0})
    assert len(configs) == 12 and all(c["seed"] == 0 for c in configs)
    assert sc.run_id({"a": 1, "b": 2}) == sc.run_id({"b": 2, "a": 1}) != sc.run_id({"a": 1, "b": 3})


def test_config_axes_of_mixed_types_are_kept(tmp_path):
    t = sc.sweep({"n_enc": 1e4, "n_pixels": 1e4, "size": [1, "tiny", None]}, tmp_path, run_fn=sc.synthetic_run,
                 progress=False)
    assert sorted(t["cfg_size"].dropna()) == ["1", "tiny"] and t["cfg_size"].isna().sum() == 1
    assert sorted(t["config"].str.contains('"size": 1')) == [False, False, True]  # the JSON keeps the value


def test_default_run_fn_absent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "eoembed.pixel", None)  # as if eoembed.pixel were not installed
    with pytest.raises(ImportError, match="eoembed.pixel:pretrain_and_score.*pass run_fn="):
        sc.sweep({"n_enc": [1e4]}, tmp_path, progress=False)
    assert not (tmp_path / "sweep.parquet").exists()


# ---------------------------------------------------------------------------------------- sweep runner
GRID = {"n_enc": [1e4, 1e5, 1e6], "n_pixels": [1e4, 1e5]}

KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from eoembed.scaling import sweep, synthetic_run
    def slow(config):
        with open(sys.argv[2], "a") as f:
            f.write(f"{config['n_enc']},{config['n_pixels']}\\n")
        time.sleep(float(sys.argv[3]))
        return synthetic_run(config)
    sweep({"n_enc": [1e4, 1e5, 1e6], "n_pixels": [1e4, 1e5]}, sys.argv[1], run_fn=slow, progress=False)
""")


def test_sweep_resumes_after_sigkill(tmp_path):
    script, calls, out = tmp_path / "run.py", tmp_path / "calls.txt", tmp_path / "sweep"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(calls), "0.5"], env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if (out / "sweep.parquet").exists() and len(sc.read_sweep(out)) >= 2:
                break
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    done = sc.read_sweep(out)
    assert 2 <= len(done) < 6 and done["run_id"].is_unique
    first = calls.read_text().splitlines()
    subprocess.run([sys.executable, str(script), str(out), str(calls), "0"], env=env, check=True)
    second = calls.read_text().splitlines()[len(first):]
    table = sc.read_sweep(out)
    assert len(table) == 6 and table["run_id"].is_unique
    assert len(second) == 6 - len(done)  # only the unfinished runs ran again
    assert set(done["run_id"]) <= set(table["run_id"])
    kept = table.set_index("run_id").loc[done["run_id"], "final_loss"].to_numpy()
    assert np.array_equal(kept, done["final_loss"].to_numpy())  # finished rows are kept as they were


FAIL = {"on": True}


def flaky(config):
    if FAIL["on"] and config["n_enc"] == 1e5:
        raise RuntimeError("out of memory (test)")
    return sc.synthetic_run(config)


def test_failed_runs_are_recorded_and_retried(tmp_path):
    FAIL["on"] = True
    with pytest.raises(sc.SweepError, match="failed: RuntimeError: out of memory"):
        sc.sweep(GRID, tmp_path, run_fn=flaky, progress=False)
    with pytest.warns(UserWarning, match="2 of 6 sweep runs failed"):
        ok = sc.sweep(GRID, tmp_path, run_fn=flaky, progress=False, on_error="record")
    everything = sc.read_sweep(tmp_path, status=None)
    assert len(ok) == 4 and len(everything) == 6
    assert everything.loc[everything["status"] == "failed", "error"].str.contains("out of memory").all()
    FAIL["on"] = False
    assert len(sc.sweep(GRID, tmp_path, run_fn=flaky, progress=False)) == 6
    assert len(sc.read_sweep(tmp_path, status=None)) == 6  # retried rows replace the failed ones


def test_one_table_one_run_function(tmp_path):
    sc.sweep(GRID, tmp_path, run_fn=sc.synthetic_run, progress=False)
    with pytest.raises(OutputError, match="already holds a sweep; pass resume=True"):
        sc.sweep(GRID, tmp_path, run_fn=sc.synthetic_run, progress=False, resume=False)
    with pytest.raises(OutputError, match="holds runs of run_fn"):
        sc.sweep(GRID, tmp_path, run_fn=flaky, progress=False)
    bad = lambda config: {"final_loss": 1.0}  # noqa: E731
    with pytest.raises(sc.SweepError, match="lacks \\['n_params_enc'"):
        sc.sweep(GRID, tmp_path / "other", run_fn=bad, progress=False)
    zero = lambda config: {**sc.synthetic_run(config), "n_pixels": 0}  # noqa: E731
    with pytest.raises(sc.SweepError, match="bad sizes: d must be finite and > 0"):
        sc.sweep(GRID, tmp_path / "zero", run_fn=zero, progress=False)


def test_sweep_on_a_dask_cluster_gives_the_local_table(tmp_path):
    distributed = pytest.importorskip("distributed")
    local = sc.sweep(GRID, tmp_path / "local", run_fn=sc.synthetic_run, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = sc.sweep(GRID, tmp_path / "dask", run_fn="eoembed.scaling:synthetic_run", scheduler=client,
                          progress=False)
        workers = set(remote["worker"])
    assert workers and "local" not in workers  # every run was a dask task
    a = local.set_index("run_id").sort_index()
    b = remote.set_index("run_id").sort_index()
    assert list(a.index) == list(b.index)
    assert np.array_equal(a["final_loss"], b["final_loss"]) and np.array_equal(a["flops"], b["flops"])
    own = sc.sweep({"n_enc": [1e4, 1e5], "n_pixels": 1e4}, tmp_path / "own", run_fn=sc.synthetic_run,
                   scheduler="local", progress=False)  # eoembed starts (and closes) a 2-worker LocalCluster
    assert len(own) == 2 and "local" not in set(own["worker"])
    with pytest.raises(DataError, match="scheduler must be None"):
        sc.sweep(GRID, tmp_path / "bad", run_fn=sc.synthetic_run, scheduler=3, progress=False)
    assert not (tmp_path / "bad").exists()  # checked before anything is written


# ------------------------------------------------------------------------------------------- plots + CLI
def test_plots_return_figures(planted_table):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    fit = sc.scaling_laws(planted_table, budget="cfg_flops", n_boot=10)
    fig = sc.plot_isoflop(fit)
    assert len(fig.axes[0].lines) == len(fit.curves)
    fig = sc.plot_frontier(fit, planted={"n_opt": 0.36})
    assert "planted 0.360" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    fig = sc.plot_loss_vs_score(planted_table)
    assert "Pearson r" in fig.axes[0].get_title()


def test_cli_sweep_and_scaling_laws(tmp_path):
    from eoembed.cli import app
    grid = [dict(c) for c in sc.isoflop_configs(BUDGETS[:3], np.logspace(4.5, 7, 9))]
    import json
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    r = CliRunner().invoke(app, ["sweep", str(tmp_path / "grid.json"), "--out", str(tmp_path / "s"),
                                 "--run-fn", "eoembed.scaling:synthetic_run", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "27 finished runs" in r.output
    r = CliRunner().invoke(app, ["scaling-laws", str(tmp_path / "s"), "--budget", "cfg_flops", "--n-boot", "20"])
    assert r.exit_code == 0, r.output
    assert "n_opt" in r.output and "d_opt" in r.output and "Pretraining loss vs downstream score" in r.output
    r = CliRunner().invoke(app, ["sweep", '{"n_pixels": [1e4, 1e5]}', "--out", str(tmp_path / "f"),
                                 "--run-fn", "eoembed.scaling:synthetic_run", "--no-progress"])
    assert r.exit_code == 1 and "DataError: synthetic_run config" in r.output, r.output
    assert "has no 'n_enc'" in r.output and "--on-error record" in r.output
    r = CliRunner().invoke(app, ["sweep", "n_enc=3", "--out", str(tmp_path / "t"),
                                 "--run-fn", "eoembed.scaling:synthetic_run"])
    assert r.exit_code == 2 and "neither a file nor JSON" in r.output
