"""The registry of JIT backends: one line per target.

Adding an architecture touches its own module plus one line in ``BACKENDS``.
Backends are imported lazily so that a broken one cannot stop the others.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

from arches.base import Backend

# target name -> "module:Class"
BACKENDS: dict[str, str] = {
    "x86_64": "arches.x86_64:X86_64Backend",
    "arm64": "arches.arm64:Arm64Backend",
    "s390x": "arches.s390x:S390xBackend",
    "ppc64": "arches.ppc64:Ppc64Backend",
    "sparc64": "arches.sparc64:Sparc64Backend",
    "x86_32": "arches.x86_32:X86_32Backend",
    "arm32": "arches.arm32:Arm32Backend",
}


def names() -> list[str]:
    """Every registered target name, in registry order."""
    return list(BACKENDS)


@lru_cache(maxsize=None)
def get(name: str) -> Backend:
    """The (per-process, shared) backend instance for ``name``."""
    try:
        spec = BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r} (known: {', '.join(BACKENDS)})") from None
    module_name, class_name = spec.split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class()
