"""Sweep runner: one pretraining run per config, results appended to one table, resumable, local or on Dask.

A *run function* takes one config dict and returns a dict with at least ``n_params_enc``, ``n_params_proj``,
``n_pixels`` (D, d-pixels seen), ``final_loss`` (pretraining loss) and ``score`` (downstream score), optionally
``L_ref`` (default 240), ``steps``, ``seconds`` and more scalars; the default is
``eoembed.pixel.pretrain_and_score``. The table ``<out>/sweep.parquet`` has one row per run: ``run_id`` (a hash of
the config), ``status`` ("ok" | "failed"), ``error``, ``run_fn``, ``config`` (JSON), ``cfg_<key>`` for every
scalar config entry, the returned values, ``flops`` (:func:`eoembed.scaling.flops`), ``wall_seconds``,
``worker`` and ``finished_at`` (UTC). It is rewritten atomically after every run, so a killed sweep loses at most
the runs in flight; re-running the same call skips the finished runs and retries failed ones.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import itertools
import json
import os
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from eoembed.errors import DataError, EOEmbedError, OutputError
from eoembed.scaling.compute import L_REF, flops

#: File name of the sweep table inside ``out``.
TABLE = "sweep.parquet"
#: Keys every run function must return.
REQUIRED = ("n_params_enc", "n_params_proj", "n_pixels", "final_loss", "score")
#: The default run function (imported only when used).
DEFAULT_RUN_FN = "eoembed.pixel:pretrain_and_score"
ON_ERROR = ("raise", "record")


class SweepError(EOEmbedError, RuntimeError):
    """A run of a sweep failed (its config and the original error are in the message)."""


# ------------------------------------------------------------------------------------------------ grid
def _plain(value: Any, where: str) -> Any:
    """JSON-able python value (numpy scalars/arrays converted); DataError for anything else."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise DataError(f"{where}: value {value!r} of type {type(value).__name__} cannot be recorded; use numbers, "
                    "strings, booleans or lists of them")


def expand_grid(grid: Any) -> list[dict[str, Any]]:
    """Configs of a sweep: ``grid`` is a dict ``{key: value or list of values}`` (the cartesian product of the
    list-valued entries, scalars fixed in every config; e.g. encoder size x projector size x data size), a list
    of config dicts, or a DataFrame (one config per row). Duplicate configs are an error."""
    if isinstance(grid, pd.DataFrame):
        configs = grid.to_dict("records")
    elif isinstance(grid, Mapping):
        if not grid:
            raise DataError("grid is empty; give e.g. {'n_enc': [1e4, 1e5], 'n_pixels': [1e5, 1e6]}")
        keys = [str(k) for k in grid]
        axes = [list(v) if isinstance(v, (list, tuple, np.ndarray, pd.Index, range)) else [v]
                for v in grid.values()]
        for k, ax in zip(keys, axes):
            if not ax:
                raise DataError(f"grid axis {k!r} has no values; give at least one")
        configs = [dict(zip(keys, combo)) for combo in itertools.product(*axes)]
    elif isinstance(grid, Iterable) and not isinstance(grid, (str, bytes)):
        configs = list(grid)
        for i, c in enumerate(configs):
            if not isinstance(c, Mapping):
                raise DataError(f"grid entry {i} is {type(c).__name__}, not a config dict")
    else:
        raise DataError(f"grid must be a dict of axes, a list of config dicts or a DataFrame, got "
                        f"{type(grid).__name__}")
    if not configs:
        raise DataError("grid has no configs")
    out = [{str(k): _plain(v, f"grid config {i} key {k!r}") for k, v in c.items()} for i, c in enumerate(configs)]
    ids = [run_id(c) for c in out]
    dup = pd.Series(ids)[pd.Series(ids).duplicated()]
    if len(dup):
        raise DataError(f"grid has {len(dup)} duplicate config(s), e.g. {out[dup.index[0]]}; each run must differ "
                        "(add a 'seed' axis for repeats)")
    return out


def run_id(config: Mapping[str, Any]) -> str:
    """Stable 12-hex-digit id of a config (key order does not matter)."""
    text = json.dumps(_plain(dict(config), "config"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------- run function
def _fn_name(run_fn: Any) -> str:
    if isinstance(run_fn, str):
        return run_fn
    return f"{getattr(run_fn, '__module__', '?')}:{getattr(run_fn, '__qualname__', repr(run_fn))}"


def resolve_run_fn(run_fn: Any = None) -> Callable[[dict], Mapping[str, Any]]:
    """The run function: a callable, a ``"module:function"`` string, or None for
    ``eoembed.pixel.pretrain_and_score`` (ImportError with what to do when that module is absent)."""
    if callable(run_fn):
        return run_fn
    spec = DEFAULT_RUN_FN if run_fn is None else run_fn
    if not isinstance(spec, str) or ":" not in spec:
        raise DataError(f"run_fn must be a callable or a 'module:function' string, got {run_fn!r}")
    mod_name, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as err:
        hint = (" (the pixel encoder is not part of this installation)" if spec == DEFAULT_RUN_FN else "")
        raise ImportError(f"run_fn {spec!r}: cannot import {mod_name!r}{hint}: {err}; pass run_fn= a callable "
                          "config -> dict, e.g. run_fn='eoembed.scaling:synthetic_run' to try the toolkit") from err
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ImportError(f"run_fn {spec!r}: module {mod_name!r} has no function {attr!r}; pass run_fn= a callable "
                          "config -> dict, e.g. run_fn='eoembed.scaling:synthetic_run'")
    return fn


def _execute(run_fn: Any, config: dict[str, Any]) -> tuple[Any, str | None, float, str]:
    """Run one config (on the driver or a dask worker); never raises: (result, error text, seconds, worker)."""
    try:
        from distributed import get_worker
        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "local"
    t0 = time.perf_counter()
    try:
        res = resolve_run_fn(run_fn)(dict(config))
        return (dict(res) if isinstance(res, Mapping) else res), None, time.perf_counter() - t0, worker
    except Exception as err:  # recorded (or re-raised by the driver, per on_error)
        tb = traceback.format_exception_only(type(err), err)
        return None, "".join(tb).strip(), time.perf_counter() - t0, worker


def _row(rid: str, config: dict[str, Any], fn_name: str, result: Any, error: str | None, seconds: float,
         worker: str) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": rid, "status": "ok", "error": None, "run_fn": fn_name,
                           "config": json.dumps(config, sort_keys=True)}
    row.update({f"cfg_{k}": v for k, v in config.items() if v is None or isinstance(v, (str, bool, int, float))})
    if error is None:
        if not isinstance(result, Mapping):
            error = f"run function returned {type(result).__name__}, not a dict"
        else:
            missing = [k for k in REQUIRED if k not in result]
            if missing:
                error = (f"run function result lacks {missing} (has {sorted(result)}); it must return "
                         f"{list(REQUIRED)}")
    if error is None:
        for k, v in result.items():
            if k in row or k in ("flops", "wall_seconds", "worker", "finished_at"):
                k = f"result_{k}"
            row[k] = _plain(v, f"run {rid} result {k!r}") if not isinstance(v, (list, dict)) else json.dumps(v)
        row.setdefault("L_ref", float(L_REF))
        try:
            row["flops"] = flops(row["n_params_enc"], row["n_params_proj"], row["n_pixels"], row["L_ref"])
        except DataError as err:
            error = f"run function returned bad sizes: {err}"
    if error is not None:
        row = {k: v for k, v in row.items() if k in ("run_id", "run_fn", "config") or k.startswith("cfg_")}
        row.update(status="failed", error=error)
    row.update(wall_seconds=float(seconds), worker=str(worker),
               finished_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return row


# ------------------------------------------------------------------------------------------------ table
def read_sweep(out: str | os.PathLike, status: str | None = "ok") -> pd.DataFrame:
    """The sweep table of ``out`` (a folder or the table file); ``status="ok"`` keeps finished runs, None all."""
    p = Path(out)
    path = p / TABLE if p.is_dir() or p.suffix != ".parquet" else p
    if not path.is_file():
        from eoembed.errors import DataFileNotFound
        raise DataFileNotFound(f"no sweep table at {str(path)!r}; run eoembed.scaling.sweep(grid, out={str(out)!r})")
    df = pd.read_parquet(path)
    return df[df["status"] == status].reset_index(drop=True) if status is not None else df


def _mixed(col: pd.Series) -> bool:
    return col.dtype == object and len({type(v) for v in col if v is not None and not (
        isinstance(v, float) and np.isnan(v))}) > 1


def _write(path: Path, df: pd.DataFrame) -> pd.DataFrame:
    """Write the table atomically; config columns mixing types (an axis [1, "tiny"]) are stored as text (the
    ``config`` JSON keeps the values). Returns the table as written."""
    mixed = [c for c in df.columns if _mixed(df[c])]
    bad = [c for c in mixed if not c.startswith("cfg_")]
    if bad:
        raise OutputError(f"sweep results column(s) {bad} mix value types across runs (e.g. "
                          f"{df[bad[0]].dropna().unique()[:3].tolist()}); the run function must return one type "
                          "per key")
    if mixed:
        df = df.copy()
        for c in mixed:
            df[c] = [v if v is None or isinstance(v, str) else str(v) for v in df[c]]
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)  # atomic: a kill leaves the old or the new table, never half of one
    return df


class _Table:
    """The one sweep table, owned by the driver: append a row = rewrite atomically."""

    def __init__(self, path: Path, resume: bool, fn_name: str):
        self.path = path
        self.df = pd.DataFrame()
        if path.exists():
            if not resume:
                raise OutputError(f"{str(path)!r} already holds a sweep; pass resume=True to continue it (finished "
                                  "runs are skipped) or choose another out")
            self.df = pd.read_parquet(path)
            other = sorted(set(self.df["run_fn"]) - {fn_name}) if len(self.df) else []
            if other:
                raise OutputError(f"{str(path)!r} holds runs of run_fn {other}, not {fn_name!r}; one table holds one "
                                  "run function: choose another out or pass the same run_fn")

    def done(self) -> set[str]:
        return set(self.df.loc[self.df["status"] == "ok", "run_id"]) if len(self.df) else set()

    def append(self, row: dict[str, Any]) -> None:
        keep = self.df[self.df["run_id"] != row["run_id"]] if len(self.df) else self.df  # a retried failed run
        new = pd.DataFrame([row])
        self.df = _write(self.path, new if keep.empty else pd.concat([keep, new], ignore_index=True))


def _client(scheduler: Any) -> tuple[Any, Any, bool]:
    """(client, cluster to close or None, close the client?)."""
    from distributed import Client, LocalCluster
    if isinstance(scheduler, Client):
        return scheduler, None, False
    if scheduler == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
        return Client(cluster), cluster, True
    if isinstance(scheduler, str):
        return Client(scheduler), None, True
    raise DataError(f"scheduler must be None (in this process), 'local' (a 2-worker dask LocalCluster), a dask "
                    f"scheduler address such as 'tcp://host:8786' or a distributed.Client; got {scheduler!r}")


# ------------------------------------------------------------------------------------------------ sweep
def sweep(grid: Any, out: str | os.PathLike, run_fn: Any = None, scheduler: Any = None, resume: bool = True,
          progress: bool = True, on_error: str = "raise") -> pd.DataFrame:
    """Run every config of ``grid`` (see :func:`expand_grid`) with ``run_fn`` and append one row per run to
    ``<out>/sweep.parquet`` (module doc); returns the table of finished runs (:func:`read_sweep`).

    run_fn: callable config -> dict, ``"module:function"``, or None for ``eoembed.pixel.pretrain_and_score``.
    scheduler: None runs in this process; ``"local"`` starts a dask LocalCluster (2 workers); an address or a
    ``distributed.Client`` uses that cluster; one run per dask task, the rows are written by this process.
    resume: skip runs already finished in ``out`` (False: an existing table is an error, never overwritten); a
    grid with more configs adds their rows to the same table.
    on_error: "raise" (stop at the first failed run, after recording it) or "record" (record it, go on; a
    warning counts the failures). Failed runs are retried by the next call.
    """
    if on_error not in ON_ERROR:
        raise DataError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if scheduler is not None and not isinstance(scheduler, str) and not hasattr(scheduler, "submit"):
        _client(scheduler)  # raises the DataError that says what a scheduler can be
    configs = expand_grid(grid)
    if isinstance(run_fn, str) or run_fn is None:
        resolve_run_fn(run_fn)  # fail here, not in every task, when the module is absent
        fn_ref: Any = run_fn or DEFAULT_RUN_FN
    elif callable(run_fn):
        fn_ref = run_fn
    else:
        raise DataError(f"run_fn must be a callable or a 'module:function' string, got {run_fn!r}")
    fn_name = _fn_name(fn_ref)
    out_p = Path(out)
    if out_p.exists() and not out_p.is_dir():
        raise OutputError(f"out {str(out_p)!r} is a file; give a folder for the sweep table")
    table = _Table(out_p / TABLE, resume, fn_name)
    out_p.mkdir(parents=True, exist_ok=True)
    done = table.done()
    todo = [(run_id(c), c) for c in configs if run_id(c) not in done]
    pbar = None
    if progress:
        from tqdm.auto import tqdm
        pbar = tqdm(total=len(configs), initial=len(configs) - len(todo), desc="sweep", unit="run")
    failures: list[str] = []

    def record(rid: str, config: dict, res: tuple) -> None:
        row = _row(rid, config, fn_name, *res)
        table.append(row)
        if pbar is not None:
            pbar.update(1)
        if row["status"] != "ok":
            failures.append(rid)
            if on_error == "raise":
                raise SweepError(f"sweep run {rid} (config {config}) failed: {row['error']}; it is recorded as "
                                 f"failed in {str(table.path)!r} and retried when the sweep is run again "
                                 "(on_error='record' goes on after failures)")

    try:
        if scheduler is None:
            for rid, config in todo:
                record(rid, config, _execute(fn_ref, config))
        elif todo:
            from distributed import as_completed
            client, cluster, close = _client(scheduler)
            futures = {}
            try:
                futures = {client.submit(_execute, fn_ref, config, pure=False):
                           (rid, config) for rid, config in todo}
                for fut in as_completed(futures):
                    rid, config = futures[fut]
                    record(rid, config, fut.result())
            finally:
                for f in futures:
                    f.cancel()
                if close:
                    client.close()
                if cluster is not None:
                    cluster.close()
    finally:
        if pbar is not None:
            pbar.close()
    if failures:
        warnings.warn(f"{len(failures)} of {len(configs)} sweep runs failed (status 'failed' in "
                      f"{str(table.path)!r}, e.g. run {failures[0]}); re-run the sweep to retry them", stacklevel=2)
    return read_sweep(out_p)
