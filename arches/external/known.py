"""Known failures of an external JIT: bugs its authors know of, recorded per target.

A per-target TOML file in the repository (``arches/external/known_failures/<target>.toml``
by default) lists each failing case with the target and the reason::

    [[failure]]
    case = "corpus/mem/stdw_imm_0x80000000_sign_extends.data"
    target = "ubpf-arm64"
    reason = "stdw with a negative immediate stores it zero-extended (...)"

The runner reports such a cell as ``known`` while it fails (CI stays green, the bug
stays visible) and as ``stale`` once it passes, so a fixed bug is noticed and its
entry removed. ``target`` may list several targets that share the file (uBPF's
dispatcher targets run the same code as the others). ``case`` is matched against the end of the case's path, so an entry
``corpus/mem/x.data`` matches that case wherever the checkout is, and an entry
``bpf_conformance/tests/x.data`` matches a file of a suite outside the repository.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePath

from arches.external.description import DescriptionError


@dataclass(frozen=True)
class KnownFailure:
    case: str
    target: str
    reason: str
    source: Path | None = None  # the file that records it


def load_known_failures(path: Path, target: str) -> list[KnownFailure]:
    """The entries of one target's file (none when it does not exist); DescriptionError names the file."""
    if not path.exists():
        return []
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise DescriptionError(f"{path}: not valid TOML: {error}") from None
    entries = document.get("failure", [])
    if not isinstance(entries, list):
        raise DescriptionError(f"{path}: \"failure\" must be an array of tables ([[failure]])")
    failures = []
    for index, entry in enumerate(entries, start=1):
        where = f"{path}: failure {index}"
        if not isinstance(entry, dict) or not all(isinstance(entry.get(key), str) and entry.get(key)
                                                  for key in ("case", "reason")):
            raise DescriptionError(f"{where}: case, target and reason are required strings")
        targets = entry.get("target")
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(targets, list) or not targets or not all(isinstance(name, str) for name in targets):
            raise DescriptionError(f"{where}: \"target\" is a target name or a list of them")
        if target not in targets:
            raise DescriptionError(f"{where}: target {entry['target']!r} in the file of target {target!r}")
        failures.append(KnownFailure(entry["case"], target, " ".join(entry["reason"].split()), path))
    return failures


def matching(failures: list[KnownFailure], case: str) -> KnownFailure | None:
    """The entry whose ``case`` path is the tail of ``case`` (compared part by part)."""
    parts = PurePath(case).parts
    for failure in failures:
        wanted = PurePath(failure.case).parts
        if len(wanted) <= len(parts) and parts[len(parts) - len(wanted):] == wanted:
            return failure
    return None
