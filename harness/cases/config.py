"""Per-folder settings: a ``harness.toml`` beside the cases, found by walking up.

A corpus folder written for another runtime says so once instead of in every case::

    # harness.toml
    helpers = "ubpf"        # call N uses uBPF's test helpers (0-5) instead of the harness's
    empty-memory = "null"   # a case without -- mem starts with r1 = 0 (uBPF, test_bpf)
    results = "little-endian"   # -- result is what a little-endian runtime returns

``empty-memory`` says where r1 points when a case gives no input memory: ``mapped``
(the default: 64 KiB of zeros at the input-memory address, r2 = 0) or ``null`` (r1 = 0
and r2 = 0, as uBPF's runners pass a NULL context and test_bpf passes one for
FLAG_NO_DATA).

``results`` says which targets a ``-- result`` speaks for: ``both-orders`` (the
default: every target, unless ``-- result-be`` gives the big-endian value) or
``little-endian`` (suites written against little-endian runtimes, such as
bpf_conformance and uBPF: a big-endian target, without ``-- result-be``, is held to
the big-endian interpreter alone).

The nearest ``harness.toml`` from a case's folder upwards applies (the search stops at
the file system root). A setting it does not make comes from the run (``--helpers``,
``--empty-memory``, ``--results``), and otherwise from the defaults. An unknown key or value is a
:class:`ConfigError` naming the file, so a typo never silently changes what a case means.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CONFIG_NAME = "harness.toml"
# The helper numberings a case may choose (harness/oracle/helpers.py implements each).
HELPER_SET_NAMES = ("harness", "ubpf")
DEFAULT_HELPER_SET = "harness"
EMPTY_MEMORY_CHOICES = ("mapped", "null")
RESULTS_CHOICES = ("both-orders", "little-endian")
CHOICES = {"helpers": HELPER_SET_NAMES, "empty-memory": EMPTY_MEMORY_CHOICES, "results": RESULTS_CHOICES}
KNOWN_KEYS = tuple(CHOICES)


class ConfigError(ValueError):
    """A ``harness.toml`` that cannot be used; str() names the file."""


@dataclass(frozen=True)
class RunDefaults:
    """The settings a run gives cases whose folders choose none (hashable: a cache key)."""

    helpers: str = DEFAULT_HELPER_SET
    empty_memory: str = "mapped"
    results: str = "both-orders"


@dataclass(frozen=True)
class FolderConfig:
    """What a folder's ``harness.toml`` chooses (None: not chosen there)."""

    path: Path | None = None  # the file it came from
    helpers: str | None = None
    empty_memory: str | None = None
    results: str | None = None


def _read(path: Path) -> FolderConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    unknown = sorted(set(data) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(KNOWN_KEYS)})")
    for key, value in data.items():
        if value not in CHOICES[key]:
            raise ConfigError(f"{path}: {key} = {value!r}: expected one of {', '.join(CHOICES[key])}")
    return FolderConfig(path, data.get("helpers"), data.get("empty-memory"), data.get("results"))


@lru_cache(maxsize=1024)
def folder_config(directory: Path) -> FolderConfig:
    """The settings in force for cases in ``directory`` (the nearest harness.toml upwards)."""
    directory = directory.resolve()
    for folder in (directory, *directory.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return _read(candidate)
    return FolderConfig()


def config_for_case(case_path: str | Path) -> FolderConfig:
    """The settings that apply to the case file at ``case_path``."""
    return folder_config(Path(case_path).parent)
