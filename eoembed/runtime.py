"""Where and at what precision eoembed computes: the one device helper, explicit precision, and torch's global state.

Numbers are eoembed's decision, never a dependency's or the machine's:

- :func:`resolve_device` is the one place that turns ``device=None | "cpu" | "cuda" | torch.device`` into a device.
- :func:`compute` wraps every eoembed computation (extraction, probes, compressor training, baselines). With
  ``precision="float32"`` (the default everywhere) float32 matmuls and convolutions run in full IEEE float32 on
  every backend, even if the caller (or a library such as terratorch) asked torch for "medium"/"high" precision,
  which on CPUs with AMX/AVX512-BF16 runs them in bf16 and on GPUs in TF32. ``precision="bf16"`` is an opt-in for
  CUDA (bf16 autocast); it is refused on CPU, where it would make results depend on the processor.
- :func:`global_state` / :func:`preserve_global_state` snapshot and restore torch's process-wide numeric settings
  (matmul/conv fp32 precision per backend, TF32 flags, reduced-precision reductions, deterministic flags, default
  dtype, thread count). Imports and model builds of third-party libraries run inside ``preserve_global_state``.
  The test suite checks after every test that the state is unchanged.

The precision used is recorded with every result (store metadata, evaluation reports, compressor histories) via
:func:`describe`.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["PRECISIONS", "resolve_device", "check_precision", "compute", "describe", "global_state",
           "restore_global_state", "preserve_global_state", "full_float32"]

#: Precisions eoembed computes at: full IEEE float32 (default) or bf16 autocast (CUDA opt-in).
PRECISIONS: tuple[str, ...] = ("float32", "bf16")

# Backend fp32-precision switches of torch >= 2.9 ("none" = inherit, "ieee" = full fp32, "tf32" / "bf16" = reduced).
_FP32_SWITCHES: tuple[tuple[str, ...], ...] = (
    (), ("cuda", "matmul"), ("cudnn",), ("cudnn", "conv"), ("cudnn", "rnn"),
    ("mkldnn",), ("mkldnn", "matmul"), ("mkldnn", "conv"), ("mkldnn", "rnn"),
)
# Switches set to "ieee" inside compute("float32"): every op family that could run fp32 math in reduced precision.
_FULL_FP32: tuple[tuple[str, ...], ...] = (("cuda", "matmul"), ("cudnn", "conv"), ("cudnn", "rnn"),
                                           ("mkldnn", "matmul"), ("mkldnn", "conv"), ("mkldnn", "rnn"))


def resolve_device(device: Any = None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; anything else -> ``torch.device(device)`` (checked)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but this machine has no usable CUDA GPU; use 'cpu' "
                         "or leave device unset")
    return dev


def check_precision(precision: str, device: Any = None) -> str:
    """Validate ``precision`` for ``device``: "float32" anywhere, "bf16" on CUDA only. Returns it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and resolve_device(device).type != "cuda":
        raise ValueError("precision='bf16' is an opt-in for CUDA GPUs; on CPU eoembed computes in float32 so that "
                         "results do not depend on the processor (pass precision='float32' or device='cuda')")
    return precision


def _backend(path: tuple[str, ...]) -> Any:
    obj = torch.backends
    for name in path:
        obj = getattr(obj, name)
    return obj


def _fp32_switches() -> dict[str, str]:
    out = {}
    for path in _FP32_SWITCHES:
        try:
            out[".".join(("fp32_precision",) + path)] = str(_backend(path).fp32_precision)
        except AttributeError:  # older torch without the switch
            continue
    return out


def global_state() -> dict[str, Any]:
    """A snapshot of torch's process-wide numeric settings (comparable with ``==``)."""
    cm = torch.backends.cuda.matmul
    state: dict[str, Any] = dict(_fp32_switches())
    state.update({
        "cuda.matmul.allow_bf16_reduced_precision_reduction": bool(cm.allow_bf16_reduced_precision_reduction),
        "cuda.matmul.allow_fp16_reduced_precision_reduction": bool(cm.allow_fp16_reduced_precision_reduction),
        "cudnn.deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn.benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "deterministic_algorithms_warn_only": bool(torch.is_deterministic_algorithms_warn_only_enabled()),
        "default_dtype": str(torch.get_default_dtype()),
        "num_threads": int(torch.get_num_threads()),
    })
    return state


def restore_global_state(state: dict[str, Any]) -> None:
    """Put back a :func:`global_state` snapshot (only the settings that differ are written)."""
    now = global_state()
    for key, value in state.items():
        if now.get(key) == value:
            continue
        if key.startswith("fp32_precision"):
            path = tuple(key.split(".")[1:])
            _backend(path).fp32_precision = value
        elif key.startswith("cuda.matmul."):
            setattr(torch.backends.cuda.matmul, key.split(".")[-1], value)
        elif key == "cudnn.deterministic":
            torch.backends.cudnn.deterministic = value
        elif key == "cudnn.benchmark":
            torch.backends.cudnn.benchmark = value
        elif key in ("deterministic_algorithms", "deterministic_algorithms_warn_only"):
            torch.use_deterministic_algorithms(state["deterministic_algorithms"],
                                               warn_only=state["deterministic_algorithms_warn_only"])
        elif key == "default_dtype":
            torch.set_default_dtype(getattr(torch, value.split(".")[-1]))
        elif key == "num_threads":
            torch.set_num_threads(value)


# Process-wide state is shared by threads (Dask workers, loader threads): one re-entrant lock orders every change.
# compute() blocks are counted: the first to enter saves the state and switches to full fp32, the last to leave
# restores it, so overlapping blocks on several threads never leave the fp32 switches behind.
_LOCK = threading.RLock()
_ACTIVE = 0
_SAVED: dict[str, Any] = {}


@contextlib.contextmanager
def preserve_global_state() -> Iterator[None]:
    """Run a block (an import or model build of a third-party library) and undo any change it makes to torch's
    global numeric state (e.g. ``import terratorch`` sets float32 matmul precision to "medium" process-wide).
    Such blocks run one at a time (a re-entrant lock)."""
    with _LOCK:
        before = global_state()
        try:
            yield
        finally:
            restore_global_state(before)


@contextlib.contextmanager
def _full_fp32(threads: int | None) -> Iterator[None]:
    global _ACTIVE, _SAVED
    with _LOCK:
        if _ACTIVE == 0:
            _SAVED = global_state()
            for path in _FULL_FP32:
                try:
                    _backend(path).fp32_precision = "ieee"
                except AttributeError:
                    continue
        _ACTIVE += 1
        if threads:
            torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE -= 1
            if _ACTIVE == 0:
                restore_global_state(_SAVED)


@contextlib.contextmanager
def compute(precision: str = "float32", device: Any = None, threads: int | None = None) -> Iterator[None]:
    """Compute at ``precision`` whatever the process-wide settings are; everything is restored afterwards.

    "float32": fp32 matmuls / convolutions / RNNs in full IEEE float32 on CUDA, cuDNN and oneDNN (no TF32, no
    bf16), autocast disabled. "bf16": CUDA only, bf16 autocast (the caller's opt-in for speed). ``threads``: CPU
    intra-op threads inside the block (None: leave as is). Safe to nest and to use from several threads.
    """
    check_precision(precision, device)
    dev = resolve_device(device)
    with _full_fp32(threads):
        if precision == "bf16":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
        else:
            with torch.autocast(dev.type if dev.type in ("cuda", "cpu") else "cpu", enabled=False):
                yield


def full_float32(fn: Callable) -> Callable:
    """Decorator: run ``fn`` inside ``compute("float32", device=<its device argument>)``."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with compute("float32", kwargs.get("device")):
            return fn(*args, **kwargs)
    return wrapper


def describe(precision: str = "float32") -> dict[str, Any]:
    """What is recorded with results: the precision and what it means, plus the torch version."""
    meaning = {"float32": "IEEE float32 matmuls/convolutions (no TF32, no bf16)",
               "bf16": "CUDA bf16 autocast (opt-in)"}[precision]
    return {"precision": precision, "meaning": meaning, "torch": torch.__version__}
