"""Finding, verifying and strictly loading checkpoints.

Resolution order for ``weights="auto"`` (first hit wins):

1. ``$EOEMBED_WEIGHTS/<file name>`` for each published file name of the model;
2. the torch hub cache ``$TORCH_HOME/hub/checkpoints/<file name>`` (``torch.hub.get_dir()``);
3. download from the source's URL, which is pinned to a commit (``WeightSource.revision``) into the hub cache;
   when offline this fails and :class:`~eoembed.errors.WeightsNotFound` says where to put the file.

An explicit path (``load_model(..., weights="/path/file.pt")``) is used as given (it must exist).

Hashes (as torchgeo does, checked BEFORE anything is unpickled): each :class:`~eoembed.models.base.WeightSource`
declares the full ``sha256`` of the published file and/or torchgeo's file-name prefix ``sha256_prefix``.

* Downloads go to ``.<name>.<random>.part`` beside the final name, are hashed while they stream, and are renamed
  to the final name only when complete (Content-Length) and matching the declared hash. Anything else
  (mismatch, short read, network error, Ctrl-C) deletes the part file, so no later run can trust a partial or
  wrong file. A source with no declared hash is never downloaded (``WeightsNotFound`` says how to fetch it and
  pass its path).
* Files found in ``$EOEMBED_WEIGHTS`` or the hub cache are hash-checked against their source; a mismatch raises
  ``WeightsMismatchError`` naming the file, both hashes and what to do. A local file whose source declares no
  hash is loaded with a ``UserWarning`` and ``weights_info["verified"] = False``.
* An explicit path named like a published file (e.g. ``CROMA_base-0238d814.pt``) must match that file's hash.
  An explicit path with another name is the user's own checkpoint (e.g. fine-tuned): it is loaded without a
  hash check, and ``weights_info`` records ``verified: False`` with a note (or ``True`` when its hash equals a
  published one).

``weights_info`` (embedder metadata) always records the file's full ``sha256``, ``verified``, ``origin``
("explicit", "EOEMBED_WEIGHTS", "hub cache", "download") and the expected hash.

Loading is strict: every parameter/buffer of the model must be in the checkpoint with the right shape and the
checkpoint may hold nothing else, apart from the per-model rules declared in the model module (explicit key
remapping, keys the model computes itself, keys with a documented default, decoder keys that are dropped).
Anything else raises :class:`~eoembed.errors.WeightsMismatchError` listing the tensors.
"""
from __future__ import annotations

import hashlib
import os
import threading
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from eoembed.errors import WeightsMismatchError, WeightsNotFound

ENV_VAR = "EOEMBED_WEIGHTS"
#: Seconds without data after which a download is abandoned.
DOWNLOAD_TIMEOUT_S = 60.0


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


class Resolved(NamedTuple):
    """A located checkpoint and what is known about it (``resolve``'s result; ``[0]`` is the path)."""

    path: Path
    sha256: str
    verified: bool  # its SHA-256 equals a published one declared by the model
    origin: str  # "explicit" | "EOEMBED_WEIGHTS" | "hub cache" | "download"
    expected: str | None  # the declared hash (full or prefix) it was checked against, if any
    note: str

    def info(self) -> dict[str, Any]:
        """JSON-able summary for ``weights_info``."""
        return {"sha256": self.sha256, "verified": self.verified, "origin": self.origin,
                "expected_sha256": self.expected, "verification": self.note}


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
    """First existing local checkpoint (EOEMBED_WEIGHTS, then hub cache) or None. Never downloads or hashes."""
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


def _hash_matches(actual: str, source: Any) -> bool:
    if source.sha256:
        return actual == source.sha256
    return bool(source.sha256_prefix) and actual.startswith(source.sha256_prefix)


def _describe_expected(source: Any) -> str:
    if source.sha256:
        return source.sha256
    return f"{source.sha256_prefix}... (prefix from the file name, as torchgeo declares it)"


def hash_mismatch_error(path: Path, actual: str, source: Any, model: str, *, downloaded: bool = False
                        ) -> WeightsMismatchError:
    """The error for a file whose SHA-256 differs from the published one: names the file, both hashes, the fix."""
    what = (f"the download of {source.url} was deleted (nothing was kept in {path.parent})" if downloaded else
            f"delete {path} and run again to re-download it" + (f" from {source.url}" if source.url else ""))
    return WeightsMismatchError(
        f"checkpoint {str(path)!r} for model {model!r} has SHA-256 {actual}, but the published "
        f"{source.filename} has SHA-256 {_describe_expected(source)}. The file is truncated, corrupt or a "
        f"different checkpoint, so it was not loaded. Fix: {what}; or download it yourself"
        + (f" from {source.url}" if source.url else "") + " and compare `sha256sum`; to use a different "
        "checkpoint on purpose (e.g. fine-tuned), give it another file name and pass weights='/path/to/it'.")


def verify_file(path: Path, sources: Sequence[Any], model: str, origin: str) -> Resolved:
    """Hash ``path`` and check it against the declared hash of the source with the same file name.

    ``origin="explicit"``: a file whose name is not a published one is accepted unverified (the user's own
    checkpoint), noted. Other origins (found by name): a mismatch raises; no declared hash warns loudly.
    """
    actual = file_sha256(path)
    same_name = [s for s in sources if s.filename == path.name]
    src = same_name[0] if same_name else None
    if src is not None and src.expected_sha256:
        if not _hash_matches(actual, src):
            raise hash_mismatch_error(path, actual, src, model)
        kind = "full SHA-256" if src.sha256 else f"SHA-256 prefix {src.sha256_prefix} (torchgeo's check)"
        return Resolved(path, actual, True, origin, src.expected_sha256,
                        f"{kind} matches the published {src.filename}")
    if src is not None:  # published name, but no hash is known for it
        note = (f"UNVERIFIED: no published SHA-256 is known to eoembed for {src.filename} ({src.note or src.url}); "
                "compare the hash with the provider's if you can")
        if origin != "explicit":
            warnings.warn(f"{model}: loading {path} without a hash check: {note}", UserWarning, stacklevel=3)
        return Resolved(path, actual, False, origin, None, note)
    match = [s for s in sources if s.expected_sha256 and _hash_matches(actual, s)]
    if match:
        return Resolved(path, actual, True, origin, match[0].expected_sha256,
                        f"renamed copy of the published {match[0].filename} (hash matches)")
    note = ("explicit path: not a published checkpoint of this model (its SHA-256 matches none declared), "
            "loaded as given; strict key/shape loading still applies")
    return Resolved(path, actual, False, origin, None, note)


def download_checkpoint(source: Any, dest_dir: Path, model: str = "", *,
                        timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``source`` to ``dest_dir/<filename>``: stream to a part file, hash, verify, then rename.

    Raises WeightsNotFound (no URL, no declared hash, network error, short read) or WeightsMismatchError (hash);
    in every failure the part file is deleted, so nothing partial or wrong is left under the final name.
    """
    return _download(source, dest_dir, model, timeout)[0]


def _download(source: Any, dest_dir: Path, model: str, timeout: float) -> tuple[Path, str]:
    if not source.url:
        raise WeightsNotFound(f"{source.filename}: no download URL is known")
    if not source.expected_sha256:
        raise WeightsNotFound(
            f"{source.filename}: eoembed knows no published SHA-256 for {source.url}, so it does not download it "
            "(an unverifiable file could be anything). Download it yourself, check it, and pass its path as "
            "weights='/path/to/file' (or put it in $EOEMBED_WEIGHTS; it then loads with an 'unverified' warning)")
    dest_dir = Path(dest_dir)
    dest = dest_dir / source.filename
    part = dest_dir / f".{source.filename}.{uuid.uuid4().hex[:12]}.part"
    h = hashlib.sha256()
    got = 0
    try:
        req = urllib.request.Request(source.url, headers={"User-Agent": "eoembed"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            dest_dir.mkdir(parents=True, exist_ok=True)
            with open(part, "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
        if length is not None and got != int(length):
            raise WeightsNotFound(f"download of {source.url} stopped after {got} of {length} bytes; nothing was "
                                  "kept; run again")
        actual = h.hexdigest()
        if not _hash_matches(actual, source):
            raise hash_mismatch_error(dest, actual, source, model, downloaded=True)
        os.replace(part, dest)
        return dest, actual
    except (WeightsNotFound, WeightsMismatchError):
        raise
    except Exception as e:  # noqa: BLE001 - network / IO failure: report it, keep nothing
        raise WeightsNotFound(f"download of {source.url} failed after {got} bytes ({type(e).__name__}: {e}); "
                              "nothing was kept") from e
    finally:
        part.unlink(missing_ok=True)


def resolve(model: str, sources: list[Any], weights: str | os.PathLike | None, *,
            download: bool = True) -> Resolved:
    """Locate and hash-check a checkpoint (module docstring); ``weights`` is ``"auto"`` or a path.

    Raises WeightsNotFound when nothing is found (never falls back to random), WeightsMismatchError when a
    file's SHA-256 differs from the published one.
    """
    if weights is None:
        raise ValueError("resolve() needs 'auto' or a path; weights=None means random init")
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be 'auto', a path or None, got {type(weights).__name__}")
    if str(weights) != "auto":
        p = Path(weights).expanduser()
        if not p.is_file():
            raise WeightsNotFound(f"weights file {str(p)!r} for model {model!r} does not exist; check the path "
                                  "or use weights='auto' to search $EOEMBED_WEIGHTS and the torch hub cache")
        return verify_file(p, sources, model, "explicit")
    filenames = [s.filename for s in sources]
    if not filenames:
        raise WeightsNotFound(f"model {model!r} (this configuration) has no published weights; pass "
                              "weights='/path/to/state_dict.pt' (e.g. saved from a model of this configuration) "
                              "or weights=None for a random model")
    env = os.environ.get(ENV_VAR)
    for p in candidate_paths(filenames):
        if p.is_file():
            origin = "EOEMBED_WEIGHTS" if env and p.parent == Path(env).expanduser() else "hub cache"
            return verify_file(p, sources, model, origin)
    errors = []
    if download:
        for s in sources:
            if not s.url:
                continue
            try:
                path, sha = _download(s, hub_checkpoint_dir(), model, DOWNLOAD_TIMEOUT_S)
            except WeightsNotFound as e:
                errors.append(str(e)[:700])
                continue
            return Resolved(path, sha, True, "download", s.expected_sha256,
                            f"downloaded from {s.url} and verified before the rename")
    searched = [str(p) for p in candidate_paths(filenames)]
    raise WeightsNotFound(
        f"no weights found for model {model!r}. Searched: {searched}. "
        + (f"Download: {errors}. " if errors else "No download URL known. " if download else "")
        + _where_to_put(model, filenames) + ". Sources: "
        + "; ".join(f"{s.filename} <- {s.url}" for s in sources))


_HASHES: dict[tuple, str] = {}
_HASH_LOCK = threading.Lock()


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Full SHA-256 (hex) of a file, read in 4 MiB chunks; remembered per process for an unchanged file
    (same path, inode, size, modification and change times), so loading a model again does not re-read 1 GB."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _HASH_LOCK:
        if key in _HASHES:
            return _HASHES[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    with _HASH_LOCK:
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


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
