"""Build uBPF's JITs for the harness: uBPF's vm/ from UBPF_SRC plus our driver, cached.

``UBPF_SRC`` names a uBPF source tree (the directory holding ``vm/``, e.g. a clone
of github.com/iovisor/ubpf). The hook compiles every C file of ``vm/`` (unmodified;
the build is uBPF's own library without CMake: ``vm/ubpf_config.h.inc`` is a CMake
template, so an empty ``ubpf_config.h`` is written instead, which leaves ELF loading
out and retpolines in, as uBPF's CMake defaults do) together with ``driver.c`` (the
harness's own code, which speaks the external-JIT protocol) into one program,
``ubpf-driver``, with the system C compiler (``$CC``, else cc, gcc or clang).

The result is cached under ``$HARNESS_CACHE_DIR`` (default
``$XDG_CACHE_HOME/ebpf-jit-harness``, else ``~/.cache/ebpf-jit-harness``) in a folder
named by a hash of the sources' contents, the driver, the compiler's identity and
the flags, so an edited uBPF tree is rebuilt and an unchanged one never is. The
build goes to a temporary name first and is renamed into place, so parallel
workers can race safely.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from arches.external.description import TargetDescription, Unavailable

DRIVER_SOURCE = Path(__file__).resolve().parent / "driver.c"
SOURCE_ENV = "UBPF_SRC"
CACHE_ENV = "HARNESS_CACHE_DIR"
# uBPF's vm/ must have these (the loader, the interpreter's validator, both JITs, the JIT driver).
REQUIRED_FILES = ("ubpf_vm.c", "ubpf_jit.c", "ubpf_jit_support.c", "ubpf_jit_x86_64.c", "ubpf_jit_arm64.c",
                  "ubpf_int.h", "inc/ubpf.h")
# uBPF's own code is compiled as it is (its warnings are not ours); the driver with every warning.
UBPF_FLAGS = ("-O1", "-g", "-w", "-std=gnu11")
DRIVER_FLAGS = ("-O1", "-g", "-Wall", "-Wextra", "-std=gnu11")
# The driver reads uBPF's per-instruction code offsets before uBPF frees them (driver.c, bpf_to_native).
LINK_FLAGS = ("-Wl,--wrap=release_jit_state_result",)


def cache_dir() -> Path:
    """Where built drivers are kept (outside the repository)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ebpf-jit-harness"


def find_compiler() -> str | None:
    """``$CC`` if set, else the first of cc, gcc, clang on PATH."""
    if os.environ.get("CC"):
        return shutil.which(os.environ["CC"].split()[0]) and os.environ["CC"]
    return next((name for name in ("cc", "gcc", "clang") if shutil.which(name)), None)


def source_files(vm: Path) -> list[Path]:
    """uBPF's C sources: every .c file directly in vm/ except its test program."""
    return sorted(path for path in vm.glob("*.c") if path.name != "test.c")


def content_key(vm: Path, compiler: str) -> str:
    """A hash of everything the build depends on."""
    digest = hashlib.blake2b(digest_size=10)
    for path in sorted(list(vm.rglob("*.[ch]")) + [DRIVER_SOURCE]):
        digest.update(str(path.relative_to(vm) if path.is_relative_to(vm) else path.name).encode() + b"\0")
        digest.update(path.read_bytes())
    try:
        identity = subprocess.run([*compiler.split(), "--version"], capture_output=True, text=True,
                                  timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        identity = compiler
    digest.update(f"{compiler}\0{identity}\0{UBPF_FLAGS}\0{DRIVER_FLAGS}\0{LINK_FLAGS}".encode())
    return digest.hexdigest()


def build(description: TargetDescription) -> dict[str, str]:
    """The build hook named by targets/ubpf.toml: ``{"driver": path}``, or Unavailable saying why."""
    source = os.environ.get(SOURCE_ENV, "")
    if not source:
        raise Unavailable(f"{description.name}: unavailable: {SOURCE_ENV} is not set (point it at a uBPF "
                          f"source tree, the directory holding vm/)")
    return {"driver": str(build_driver(Path(source), description.name))}


@lru_cache(maxsize=None)
def build_driver(source: Path, target: str = "ubpf") -> Path:
    """The path of ``ubpf-driver`` built from ``source``/vm (built now unless cached)."""
    vm = source / "vm"
    missing = [name for name in REQUIRED_FILES if not (vm / name).is_file()]
    if missing:
        raise Unavailable(f"{target}: unavailable: {SOURCE_ENV}={source} is not a uBPF source tree "
                          f"(no vm/{missing[0]})")
    compiler = find_compiler()
    if compiler is None:
        raise Unavailable(f"{target}: unavailable: no C compiler to build uBPF with (set CC, or install "
                          f"cc, gcc or clang)")
    folder = cache_dir() / f"ubpf-{content_key(vm, compiler)}"
    driver = folder / "ubpf-driver"
    if driver.is_file():
        return driver
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise Unavailable(f"{target}: unavailable: cannot create the build cache {folder}: "
                          f"{error.strerror or error} (set {CACHE_ENV})") from None
    with tempfile.TemporaryDirectory(dir=folder) as work:
        scratch = Path(work)
        (scratch / "ubpf_config.h").write_text("#pragma once\n")  # what CMake writes with its defaults
        includes = ["-I", str(scratch), "-I", str(vm), "-I", str(vm / "inc")]
        objects = []
        log = folder / "build.log"
        steps = [(path, UBPF_FLAGS) for path in source_files(vm)] + [(DRIVER_SOURCE, DRIVER_FLAGS)]
        for path, flags in steps:
            obj = scratch / (path.stem + ".o")
            _run([*compiler.split(), *flags, *includes, "-c", str(path), "-o", str(obj)], log, target)
            objects.append(str(obj))
        linked = scratch / "ubpf-driver"
        _run([*compiler.split(), *objects, *LINK_FLAGS, "-lm", "-o", str(linked)], log, target)
        os.replace(linked, driver)  # atomic: a parallel build of the same key writes the same program
    return driver


def _run(command: list[str], log: Path, target: str) -> None:
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        log.write_text(" ".join(command) + "\n" + finished.stdout + finished.stderr)
        first = next((line for line in finished.stderr.splitlines() if "error" in line),
                     finished.stderr.strip().splitlines()[0] if finished.stderr.strip() else "no message")
        raise Unavailable(f"{target}: unavailable: building uBPF failed: {first.strip()} (full log: {log})")
