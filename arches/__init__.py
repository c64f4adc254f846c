"""The registry of JIT backends: one line per target.

Adding an architecture touches its own module plus one line in ``BACKENDS``.
Backends are imported lazily so that a broken one cannot stop the others.
External JITs (JITs this project did not write, e.g. uBPF's) are described by
data in ``arches/external/`` and resolved by :func:`get` too; :func:`names`
stays the built-in targets (what ``--arch all`` means).
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
    "mips64": "arches.mips64:Mips64Backend",
    "mips64el": "arches.mips64:Mips64elBackend",
    "riscv64": "arches.riscv64:Riscv64Backend",
}


def names() -> list[str]:
    """Every built-in target name, in registry order."""
    return list(BACKENDS)


def external_names() -> list[str]:
    """Every described external-JIT target (arches/external/), available here or not."""
    from arches import external

    return external.names()


@lru_cache(maxsize=None)
def get(name: str) -> Backend:
    """The (per-process, shared) backend instance for ``name``, built-in or external.

    An external target that cannot run here raises ``arches.external.Unavailable``
    with one line saying why.
    """
    spec = BACKENDS.get(name)
    if spec is None:
        if name in external_names():
            from arches import external

            return external.get(name)
        known = list(BACKENDS) + external_names()
        raise KeyError(f"unknown architecture {name!r} (known: {', '.join(known)})")
    module_name, class_name = spec.split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class()
