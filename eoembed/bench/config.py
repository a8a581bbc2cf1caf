"""NeuCo-Bench configs: ``evaluate(config=...)`` / ``eoembed bench --config`` read NeuCo-Bench's YAML files.

The options and their meaning follow NeuCo-Bench (benchmark/evaluation/config.py, benchmark/main.py,
configs/sample_config_linear.yaml at commit a89ba06). Rule for explicit arguments: a value passed to
:func:`eoembed.bench.evaluate` (or a CLI flag) wins over the config; the config wins over the defaults, which
are NeuCo-Bench's sample config. The effective values are what results_summary.json records under ``config``.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

from eoembed.errors import DataError, DataFileNotFound

#: NeuCo-Bench's configs/sample_config_linear.yaml (a89ba06): the defaults of evaluate().
NEUCO_DEFAULTS: dict = {
    "k_folds": 40,
    "probe_type": "linear",
    "probe_params": {"batch_size": 64, "epochs": 10, "learning_rate": 0.001, "device": "auto"},
    "embedding_dim": None,
    "standardize_embeddings": True,
    "normalize_labels": True,
    "enable_plots": False,
    "update_leaderboard": False,
    "store_probes": False,
    "task_filter": None,
}
#: Accepted in a config besides the sample's keys: NeuCo-Bench's optional output_fold_results (default false), and
#: exclude_file (in NeuCo-Bench the --exclude_file argument of main.py).
EXTRA_KEYS = ("output_fold_results", "exclude_file")
#: Options NeuCo-Bench has that eoembed does not implement: they must be false (or absent).
UNSUPPORTED_TRUE = {
    "enable_plots": "eoembed draws no NeuCo-Bench plots; per-epoch scores are in result.history / epoch_scores.csv",
    "update_leaderboard": "build the leaderboard with eoembed.bench.compare() / leaderboard(), or run "
                          "NeuCo-Bench's summarize_runs on the output folders (they share its layout)",
    "store_probes": "eoembed does not store the trained probes",
}
_BOOL_KEYS = ("standardize_embeddings", "normalize_labels", "enable_plots", "update_leaderboard", "store_probes",
              "output_fold_results")


def _fail(where: str, msg: str) -> DataError:
    return DataError(f"config {where}: {msg}")


def _check_int(where: str, key: str, v, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _fail(where, f"`{key}` must be an integer >= {lo}, got {v!r}.")


def read_config(config, where: str | None = None) -> dict:
    """Read and check a NeuCo-Bench config: a YAML path or a dict. Returns a deep copy with every key checked.

    Keys: ``k_folds``, ``probe_type`` ("linear"), ``probe_params`` (``batch_size``, ``epochs``, ``learning_rate``,
    ``device``: "auto" | "cpu" | "cuda[:N]"), ``embedding_dim`` (None or int: fewer columns are zero-padded to it,
    more are an error), ``standardize_embeddings``, ``normalize_labels``, ``output_fold_results`` (per-fold
    scores ``q_t`` in each <task>_result.json), ``task_filter`` (None or list of tasks), ``exclude_file`` (file of
    ids to leave out, one per line), and ``enable_plots`` / ``update_leaderboard`` / ``store_probes``, which must
    be false. ``probe_type: svm`` takes NeuCo-Bench's SVM probe_params (checked by
    :func:`eoembed.bench.svm.check_svm_params`). Any other key or a wrong type is a DataError naming the option."""
    if isinstance(config, (str, Path)):
        path = Path(config)
        where = where or repr(str(path))
        if not path.is_file():
            raise DataFileNotFound(f"config file {str(path)!r} does not exist or is not a file; pass a NeuCo-Bench "
                                   "YAML config such as configs/sample_config_linear.yaml.")
        import yaml

        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise _fail(where, f"is not valid YAML ({exc}).") from None
        config = {} if loaded is None else loaded
    where = where or "dict"
    if not isinstance(config, Mapping):
        raise _fail(where, f"must be a mapping of options (like NeuCo-Bench's sample_config_linear.yaml), "
                           f"not {type(config).__name__}.")
    cfg = copy.deepcopy(dict(config))
    known = set(NEUCO_DEFAULTS) | set(EXTRA_KEYS)
    unknown = [k for k in cfg if k not in known]
    if unknown:
        raise _fail(where, f"unknown option(s) {unknown}; known options: {sorted(known)}.")
    if "probe_type" in cfg and cfg["probe_type"] not in ("linear", "svm"):
        raise _fail(where, f"probe_type {cfg['probe_type']!r} is not supported; use 'linear' or 'svm'.")
    if "k_folds" in cfg:
        _check_int(where, "k_folds", cfg["k_folds"], 2)
    pp = cfg.get("probe_params")
    if cfg.get("probe_type") == "svm":  # NeuCo-Bench's SVM probe (configs/sample_config_svm.yaml)
        from eoembed.bench.svm import check_svm_params

        if pp is None:
            raise _fail(where, "probe_type svm needs `probe_params` (see NeuCo-Bench's sample_config_svm.yaml).")
        cfg["probe_params"] = check_svm_params(pp, where)
    elif pp is not None:
        if not isinstance(pp, Mapping):
            raise _fail(where, f"`probe_params` must be a mapping, got {type(pp).__name__}.")
        bad = [k for k in pp if k not in NEUCO_DEFAULTS["probe_params"]]
        if bad:
            raise _fail(where, f"unknown probe_params option(s) {bad} for probe_type linear; known: "
                               f"{sorted(NEUCO_DEFAULTS['probe_params'])}.")
        for k in ("batch_size", "epochs"):
            if k in pp:
                _check_int(where, f"probe_params.{k}", pp[k], 1)
        lr = pp.get("learning_rate", 1.0)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
            raise _fail(where, f"`probe_params.learning_rate` must be a positive number, got {lr!r}.")
        dev = pp.get("device", "auto")
        if not isinstance(dev, str) or not (dev in ("auto", "cpu") or dev.split(":")[0] == "cuda"):
            raise _fail(where, f"`probe_params.device` must be 'auto', 'cpu' or 'cuda[:N]', got {dev!r}.")
    if cfg.get("embedding_dim") is not None:
        _check_int(where, "embedding_dim", cfg["embedding_dim"], 1)
    for k in _BOOL_KEYS:
        if k in cfg and not isinstance(cfg[k], bool):
            raise _fail(where, f"`{k}` must be true or false, got {cfg[k]!r}.")
    for k, why in UNSUPPORTED_TRUE.items():
        if cfg.get(k):
            raise _fail(where, f"`{k}: true` is not supported ({why}); set it to false.")
    tf = cfg.get("task_filter")
    if tf is not None and (not isinstance(tf, list) or not tf or not all(isinstance(t, str) for t in tf)):
        raise _fail(where, f"`task_filter` must be null or a non-empty list of task names, got {tf!r}.")
    ex = cfg.get("exclude_file")
    if ex is not None and not isinstance(ex, (str, Path)):
        raise _fail(where, f"`exclude_file` must be a file path, got {ex!r}.")
    return cfg
