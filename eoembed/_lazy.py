"""Lazy package exports: ``from eoembed.bench import evaluate`` imports torch/sklearn only when first used,
so ``eoembed --help`` and light imports stay fast."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``exports`` maps public name -> submodule (relative to ``package``); returns (__getattr__, __dir__).

    A public name must not equal a submodule's name: importing the submodule would shadow it.
    """
    clash = sorted(set(exports) & set(exports.values()))
    if clash:
        raise ImportError(f"{package}: exports {clash} share their name with a submodule; rename the submodule")

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
