"""External-JIT targets: JITs this project did not write, each described by data.

An external target is a target like the built-in ones (a value of ``--arch``, a
column in reports, fuzzable), but its native code comes from the JIT under test,
through a command that speaks the protocol of :mod:`arches.external.protocol`.
Descriptions (:mod:`arches.external.description`) are the ``[[target]]`` tables of
``arches/external/targets/*.toml`` (uBPF's two JITs ship there) and of the files
listed in the environment variable ``HARNESS_EXTERNAL_TARGETS`` (separated by
``os.pathsep``), so a JIT author can add a target without touching the repository.

A target is *configured* when the environment variables it requires are set (uBPF:
``UBPF_SRC``) and *available* when, in addition, its build hook succeeds and its
command exists. ``--arch all`` keeps meaning the built-in targets; the default
selection adds every configured target that is available, and one line says why a
configured one is not.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import shutil
from functools import lru_cache
from pathlib import Path

from arches.external.backend import ExternalBackend
from arches.external.description import DescriptionError, TargetDescription, Unavailable, load_descriptions
from arches.external.known import load_known_failures

TARGETS_DIR = Path(__file__).resolve().parent / "targets"
KNOWN_FAILURES_DIR = Path(__file__).resolve().parent / "known_failures"
EXTRA_TARGETS_ENV = "HARNESS_EXTERNAL_TARGETS"

__all__ = ["DescriptionError", "ExternalBackend", "TargetDescription", "Unavailable", "availability",
           "configured", "descriptions", "get", "names"]


def description_files() -> list[Path]:
    """The shipped description files, then those named by HARNESS_EXTERNAL_TARGETS."""
    extra = [Path(item) for item in os.environ.get(EXTRA_TARGETS_ENV, "").split(os.pathsep) if item.strip()]
    return sorted(TARGETS_DIR.glob("*.toml")) + extra


@lru_cache(maxsize=None)
def _descriptions(files: tuple[Path, ...]) -> dict[str, TargetDescription]:
    import arches

    found: dict[str, TargetDescription] = {}
    for path in files:
        for description in load_descriptions(path, arches.names()):
            if description.name in found:
                raise DescriptionError(f"{path}: target {description.name} is already described in "
                                       f"{found[description.name].source}")
            found[description.name] = description
    return found


def descriptions() -> dict[str, TargetDescription]:
    """Every described external target by name (raises DescriptionError for a bad file)."""
    return _descriptions(tuple(description_files()))


def names() -> list[str]:
    """The names of every described external target, in file order."""
    return list(descriptions())


def configured(name: str) -> bool:
    """Whether every environment variable the target requires is set (non-empty)."""
    return all(os.environ.get(variable) for variable in descriptions()[name].requires_env)


def availability(name: str) -> str | None:
    """None when the target can run here, else one line saying why not."""
    try:
        get(name)
    except Unavailable as why:
        return str(why)
    return None


def get(name: str) -> ExternalBackend:
    """The (per-process) backend of an external target; Unavailable says why it cannot run."""
    return _backend(name, tuple(description_files()), tuple(os.environ.get(variable, "") for variable
                                                             in descriptions()[name].requires_env))


@lru_cache(maxsize=None)
def _backend(name: str, files: tuple[Path, ...], environment: tuple[str, ...]) -> ExternalBackend:
    """Built once per description files and values of the required variables (the cache key)."""
    import arches

    description = _descriptions(files)[name]
    unset = [variable for variable in description.requires_env if not os.environ.get(variable)]
    if unset:
        raise Unavailable(f"{name}: unavailable: {', '.join(unset)} is not set ({description.summary or name} "
                          f"needs it; see the README, \"Testing your own JIT\")")
    substitutions: dict[str, str] = {"here": str(description.source.parent)}
    if description.build:
        module_name, _, function_name = description.build.partition(":")
        try:
            hook = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as error:
            raise DescriptionError(f"{description.source}: target {name}: build hook {description.build!r} "
                                   f"cannot be loaded: {error}") from None
        substitutions.update(hook(description))  # raises Unavailable with its own reason
    try:
        command = [part.format(**substitutions) for part in description.command]
    except (KeyError, IndexError, ValueError) as error:
        raise DescriptionError(f"{description.source}: target {name}: \"command\" uses {error}, which "
                               f"nothing provides (known: {', '.join(sorted(substitutions))})") from None
    program = command[0]
    if shutil.which(program) is None and not (Path(program).is_file() and os.access(program, os.X_OK)):
        raise Unavailable(f"{name}: unavailable: its command {program!r} is not an executable program")
    known_path = description.known_failures or KNOWN_FAILURES_DIR / f"{name}.toml"
    version = hashlib.blake2b("\0".join(command).encode(), digest_size=6).hexdigest()
    try:
        return ExternalBackend(description, arches.get(description.arch), command, version,
                               load_known_failures(known_path, name))
    except ValueError as error:  # a register name the architecture does not have, too few registers
        if isinstance(error, DescriptionError):
            raise
        raise DescriptionError(f"{description.source}: target {name}: {error}") from None
