"""Finding and strictly loading checkpoints.

Resolution order for ``weights="auto"`` (first hit wins):

1. an explicit path (``load_model(..., weights="/path/file.pt")``; must exist);
2. ``$EOEMBED_WEIGHTS/<file name>`` for each published file name of the model;
3. the torch hub cache ``$TORCH_HOME/hub/checkpoints/<file name>`` (``torch.hub.get_dir()``);
4. download with ``torch.hub.load_state_dict_from_url`` (hash-checked when the file name carries one); when
   offline this fails and :class:`~eoembed.errors.WeightsNotFound` says where to put the file.

Loading is strict: every parameter/buffer of the model must be in the checkpoint with the right shape and the
checkpoint may hold nothing else, apart from the per-model rules declared in the model module (explicit key
remapping, keys the model computes itself, keys with a documented default, decoder keys that are dropped).
Anything else raises :class:`~eoembed.errors.WeightsMismatchError` listing the tensors.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eoembed.errors import WeightsMismatchError, WeightsNotFound

ENV_VAR = "EOEMBED_WEIGHTS"


@dataclass(frozen=True)
class LoadRules:
    """Per-model checkpoint rules (all explicit, all reported in metadata).

    remap: function (state_dict -> state_dict) converting the published format to the model's key names.
    computed: model keys the model builds itself (fixed position tables); taken from the model, ignored in the file.
    defaulted: model keys that may be absent from the file and then keep their documented initial value
      (e.g. a LayerNorm created at load time, weight=1 bias=0).
    dropped_prefixes: file keys that are discarded on purpose (e.g. MAE decoder, classification head).
    """

    remap: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    computed: tuple[str, ...] = ()
    defaulted: tuple[str, ...] = ()
    dropped_prefixes: tuple[str, ...] = ()


@dataclass
class LoadReport:
    path: str
    sha256: str
    loaded: int = 0
    computed: list[str] = field(default_factory=list)
    defaulted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "loaded_tensors": self.loaded,
                "computed": self.computed, "defaulted": self.defaulted, "dropped": self.dropped}


def hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (as torch.hub resolves it now)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def candidate_paths(filenames: Iterable[str]) -> list[Path]:
    """Local places searched for each file name, in order (EOEMBED_WEIGHTS first, then the hub cache)."""
    out: list[Path] = []
    env = os.environ.get(ENV_VAR)
    names = list(filenames)
    if env:
        out += [Path(env).expanduser() / n for n in names]
    out += [hub_checkpoint_dir() / n for n in names]
    return out


def find_local(filenames: Iterable[str]) -> Path | None:
    """First existing local checkpoint (EOEMBED_WEIGHTS, then hub cache) or None. Never downloads."""
    for p in candidate_paths(filenames):
        if p.is_file():
            return p
    return None


def _where_to_put(model: str, filenames: list[str]) -> str:
    env = os.environ.get(ENV_VAR)
    places = ([f"{Path(env) / filenames[0]}"] if env else [f"$EOEMBED_WEIGHTS/{filenames[0]}"]) + \
        [str(hub_checkpoint_dir() / filenames[0])]
    return (f"Download it elsewhere and put it at one of: {', '.join(places)}; or pass weights='/path/to/file'; "
            f"or weights=None for a random model")


def resolve(model: str, sources: list[Any], weights: str | os.PathLike | None, *,
            download: bool = True) -> tuple[Path | None, dict[str, torch.Tensor] | None]:
    """Locate a checkpoint. Returns ``(path, None)`` for a local file or ``(path, state_dict)`` after a download.

    ``weights`` is ``"auto"`` or a path. Raises WeightsNotFound when nothing is found (never falls back to random).
    """
    if weights is None:
        raise ValueError("resolve() needs 'auto' or a path; weights=None means random init")
    if weights != "auto":
        p = Path(weights).expanduser()
        if not p.is_file():
            raise WeightsNotFound(f"weights file {str(p)!r} for model {model!r} does not exist; check the path "
                                  "or use weights='auto' to search $EOEMBED_WEIGHTS and the torch hub cache")
        return p, None
    filenames = [s.filename for s in sources]
    if not filenames:
        raise WeightsNotFound(f"model {model!r} (this configuration) has no published weights; pass "
                              "weights='/path/to/state_dict.pt' (e.g. saved from a model of this configuration) "
                              "or weights=None for a random model")
    local = find_local(filenames)
    if local is not None:
        return local, None
    errors = []
    if download:
        for s in sources:
            if not s.url:
                continue
            try:
                sd = torch.hub.load_state_dict_from_url(s.url, map_location="cpu", progress=False,
                                                        check_hash=bool(s.sha256_prefix), file_name=s.filename,
                                                        weights_only=True)
                return hub_checkpoint_dir() / s.filename, sd
            except Exception as e:  # noqa: BLE001 - any network/IO failure means "not available here"
                errors.append(f"{s.url}: {type(e).__name__}: {e}"[:300])
    searched = [str(p) for p in candidate_paths(filenames)]
    raise WeightsNotFound(
        f"no weights found for model {model!r}. Searched: {searched}. "
        + (f"Download failed: {errors}. " if errors else "No download URL known. " if download else "")
        + _where_to_put(model, filenames) + ". Sources: "
        + "; ".join(f"{s.filename} <- {s.url}" for s in sources))


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load`` on CPU with ``weights_only=True`` (plain tensors and containers only)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise WeightsMismatchError(f"could not read checkpoint {str(path)!r} as a tensor-only state_dict "
                                   f"({type(e).__name__}: {e}); re-save it with torch.save(model.state_dict(), ...)"
                                   ) from e
    if not isinstance(obj, dict):
        raise WeightsMismatchError(f"checkpoint {str(path)!r} holds a {type(obj).__name__}, not a state_dict")
    return obj


def unwrap(sd: dict[str, Any], keys: tuple[str, ...] = ("state_dict", "model")) -> dict[str, Any]:
    """Return ``sd[k]`` for the first wrapper key k present whose value is a dict (common checkpoint nesting)."""
    for k in keys:
        if k in sd and isinstance(sd[k], dict):
            return sd[k]
    return sd


def strict_load(module: nn.Module, state_dict: dict[str, Any], rules: LoadRules, *, path: str = "",
                sha256: str = "", model: str = "") -> LoadReport:
    """Load ``state_dict`` into ``module`` enforcing the contract above; raise WeightsMismatchError on any gap."""
    sd = dict(rules.remap(dict(state_dict)) if rules.remap else state_dict)
    report = LoadReport(path=path, sha256=sha256)
    for k in list(sd):
        if any(k.startswith(p) for p in rules.dropped_prefixes):
            report.dropped.append(k)
            del sd[k]
    target = module.state_dict()
    non_tensor = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    computed = set(rules.computed)
    missing = [k for k in target if k not in sd and k not in computed and k not in rules.defaulted]
    unexpected = [k for k in sd if k not in target and k not in non_tensor]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(target[k].shape)}" for k in target
              if k in sd and k not in computed and isinstance(sd[k], torch.Tensor) and sd[k].shape != target[k].shape]
    if missing or unexpected or shapes or non_tensor:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {missing[:20]}{' ...' if len(missing) > 20 else ''}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}")
        if shapes:
            parts.append(f"mis-shaped {len(shapes)}: {shapes[:20]}")
        if non_tensor:
            parts.append(f"non-tensor entries: {non_tensor[:20]}")
        raise WeightsMismatchError(
            f"checkpoint {path or '<state_dict>'} does not fit model {model or type(module).__name__}: "
            + "; ".join(parts) + ". Check that the file matches the model name/size (and preset), or pass "
            "weights=None for a random model.")
    load = {k: v for k, v in sd.items() if k in target and k not in computed}
    for k in computed:
        load[k] = target[k]
    report.computed = sorted(k for k in computed if k in target)
    report.defaulted = sorted(k for k in rules.defaulted if k in target and k not in sd)
    for k in report.defaulted:
        load[k] = target[k]
    module.load_state_dict(load, strict=True)
    report.loaded = len(load) - len(report.computed) - len(report.defaulted)
    return report
