"""Straightforward per-fold reference of the NeuCo-Bench linear probe (one model, optimiser and DataLoader per
fold), used to check the batched engine statistically and as the baseline of benchmarks/bench_eval.py."""
from __future__ import annotations

import textwrap

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, SubsetRandomSampler
from torchmetrics.classification import BinaryF1Score
from torchmetrics.regression import R2Score


#: First lines of a script that runs NeuCo-Bench's own code in a subprocess (tests and
#: benchmarks/bench_neuco_parity.py): scikit-optimize, used only by its SVM probe, is stubbed when absent.
NEUCO_PRELUDE = textwrap.dedent("""
    import sys, types
    try:
        import skopt  # noqa: F401
    except ImportError:  # only NeuCo-Bench's SVM probe uses scikit-optimize; the linear probe never calls it
        sk, sp = types.ModuleType("skopt"), types.ModuleType("skopt.space")
        sk.BayesSearchCV = sp.Real = sp.Categorical = None
        sk.space = sp
        sys.modules.update({"skopt": sk, "skopt.space": sp})
""")


class _Rows(Dataset):
    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X = torch.as_tensor(X, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.X[i], self.y[i]


class _Probe(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d, 1)

    def forward(self, x):
        return self.linear(x).view(-1)


def reference_fold(ds: _Rows, train_idx, test_idx, classification: bool, epochs: int = 10,
                   batch_size: int = 64, lr: float = 1e-3) -> list[float]:
    """Held-out metric after every epoch of one fold."""
    train = DataLoader(ds, batch_size=batch_size, sampler=SubsetRandomSampler(list(train_idx)))
    test = DataLoader(ds, batch_size=batch_size, sampler=SubsetRandomSampler(list(test_idx)))
    model = _Probe(ds.X.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss() if classification else nn.MSELoss()
    metric = BinaryF1Score() if classification else R2Score()
    history = []
    for _ in range(epochs):
        model.train()
        for xb, yb in train:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        preds, targets = [], []
        with torch.no_grad():
            for xb, yb in test:
                preds.append(model(xb))
                targets.append(yb)
        history.append(float(metric(torch.cat(preds), torch.cat(targets))))
    return history


def reference_scores(prep, splits: dict, epochs: int = 10, seed: int = 42) -> np.ndarray:
    """Per-fold best-over-epochs scores (T, K) for a Prepared problem and eoembed's splits, tasks in order."""
    torch.manual_seed(seed)
    out = []
    for k, t in enumerate(prep.tasks):
        ds = _Rows(prep.X, np.nan_to_num(prep.Y[k]))
        cls = prep.task_types[t] == "classification"
        out.append([max(reference_fold(ds, tr, te, cls, epochs=epochs)) for tr, te in splits[t]])
    return np.asarray(out)


#: Runs NeuCo-Bench's own evaluate() on a config (a YAML file) in a subprocess and prints the seconds it took;
#: argv: source folder, embeddings CSV, label folder, config YAML, output folder. For probe_type svm the REAL
#: scikit-optimize must be importable (put its folder on PYTHONPATH): the stub above would make it fail.
NEUCO_EVAL_RUNNER = NEUCO_PRELUDE + textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import yaml
    src, emb, labels, cfg_path, out = sys.argv[1:6]
    sys.path.insert(0, str(Path(src) / "benchmark"))
    import evaluation.evaluation as ev
    from evaluation.config import check_config
    cfg = yaml.safe_load(Path(cfg_path).read_text())
    check_config(cfg)
    if cfg["probe_type"] == "svm" and getattr(sys.modules["skopt"], "BayesSearchCV", None) is None:
        sys.exit("NeuCo-Bench's SVM probe needs the real scikit-optimize on PYTHONPATH")
    t0, c0 = time.perf_counter(), time.process_time()
    ev.evaluate(submission_file=Path(emb), annotation_path=Path(labels), method_name="neuco", output_dir=Path(out),
                phase="p", config=cfg)
    print("CPU_SECONDS", time.process_time() - c0)
    print("SECONDS", time.perf_counter() - t0)
""")


def run_neuco(src, emb, labels, cfg: dict, out, python: str | None = None, pythonpath: str | None = None) -> dict:
    """Run NeuCo-Bench's evaluate() (source folder ``src``) in a subprocess on ``cfg`` (dict, written as YAML;
    set ``output_fold_results: true`` for the fold scores). Returns {"seconds", "q": {task: Q},
    "folds": {task: [fold scores] or None}, "summary": results_summary.json}."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([python or sys.executable, "-c", NEUCO_EVAL_RUNNER, str(src), str(emb), str(labels),
                           str(cfg_path), str(out / "runs")], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"NeuCo-Bench failed:\n{proc.stderr[-3000:]}")
    (run,) = (out / "runs" / "p").iterdir()
    summary = json.loads((run / "results_summary.json").read_text())
    tasks = {t: json.loads((run / t / f"{t}_result.json").read_text()) for t in summary["task_q_scores"]}
    return {"seconds": float(proc.stdout.split("SECONDS")[-1]),
            "cpu_seconds": float(proc.stdout.split("CPU_SECONDS")[-1].split()[0]), "q": summary["task_q_scores"],
            "folds": {t: r.get("q_t") for t, r in tasks.items()}, "summary": summary,
            "task_results": tasks}


def write_neuco_inputs(X, ids, lab, folder, seed: int = 1):
    """Write embeddings (rows shuffled) and one label file per task (each in its own order) as NeuCo-Bench reads
    them; returns (csv path, label folder)."""
    import pandas as pd
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    emb = pd.DataFrame(X, columns=[str(i) for i in range(X.shape[1])])
    emb.insert(0, "id", ids)
    emb.iloc[rng.permutation(len(emb))].to_csv(folder / "emb.csv", index=False)
    (folder / "labels").mkdir(exist_ok=True)
    for t, kind in lab.attrs["task_types"].items():
        col = lab[t].iloc[rng.permutation(len(lab))]
        col = col.astype(int) if kind == "classification" else col
        col.rename("label").rename_axis("id").reset_index().to_csv(folder / "labels" / f"{t}__{kind}.csv",
                                                                   index=False)
    return folder / "emb.csv", folder / "labels"
