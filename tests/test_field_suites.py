"""The field's own suites, run unchanged through the harness on every target.

* bpf_conformance's tests/ when BPF_CONFORMANCE_TESTS names that folder,
* uBPF's tests/ (all folders but elf/) when UBPF_TESTS names that folder,
* the kernel's lib/test_bpf.c, imported from LINUX_SOURCE (a kernel tree or a
  linux-source tarball) or else the newest /usr/src/linux-source-*.tar.xz: CI runs
  the classic/ and ebpf/ cases; ``--test-bpf-all`` adds long/ and huge/.

Each is skipped, saying why, where its source is missing. Every case must pass on
every target except the documented handful below (README, "Running the field's
suites"), each with the reason it cannot pass.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest

from harness.cases.config import RunDefaults
from harness.cases.corpus import find_case_files
from harness.running.conformance import all_targets, run_item

TARGETS = all_targets()
ROOT = Path(__file__).resolve().parent.parent

# A case that declares a result for a program the validator refuses is an invalid case here:
# an error on the interpreter, a skip on every JIT target.
REFUSED = {target: "skip" for target in TARGETS} | {"interp": "error"}
# bpf_conformance: callx (0x8d) is not in RFC 9669; the validator refuses it (its own runner
# leaves the callx group out by default).
BPF_CONFORMANCE_CANNOT_PASS = {"callx.data": REFUSED}
# uBPF: four -- error pattern cases quote uBPF's own message wording ("uBPF error: ..."),
# which the harness's messages (a fault, or a rejection) do not use.
UBPF_CANNOT_PASS = {
    "errors/err-address-overflow-offset.data": {"interp": "fail"},
    "errors/err-address-underflow.data": {"interp": "fail"},
    "errors/err-integer-overflow-bounds.data": {"interp": "fail"},
    "errors/err-stack-oob.data": {"interp": "fail"},
}
# test_bpf: programs it runs without the verifier that the validator refuses (as the kernel's
# verifier would): reads of r0 before any write, an instruction after the last exit, and the
# verifier's zero-extension marker (mov32 with imm 1).
TEST_BPF_REFUSED = {43: "INT: XOR", 463: "JMP_EXIT", 737: "ATOMIC_W_CMPXCHG: src preserved in zext",
                    888: "ATOMIC_W_CMPXCHG: register combinations",
                    908: "ATOMIC_W_CMPXCHG: all operand magnitudes",
                    972: "Short relative jump: offset=0", 973: "Short relative jump: offset=1",
                    974: "Short relative jump: offset=2", 975: "Short relative jump: offset=3",
                    976: "Short relative jump: offset=4"}


def _folder(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"set {variable} to the suite's tests/ folder to run it (CI has no copy)")
    if not Path(value).is_dir():
        pytest.skip(f"{variable}={value} is not a directory")
    return Path(value)


def _run(paths: list[Path], target: str, defaults: RunDefaults, root: Path) -> dict[str, tuple[str, str]]:
    """{case relative to root: (status, detail)} for every case on one target."""
    results = {}
    for path in paths:
        result = run_item(str(path), target, defaults=defaults)
        results[str(path.relative_to(root))] = (result.status, result.detail)
    return results


def _check(results: dict[str, tuple[str, str]], target: str, cannot_pass: dict[str, dict[str, str]]) -> None:
    """Every case passes (or skips, as a JIT target does for an interpreter-only or refused
    case), except the listed ones, which must end exactly as listed."""
    def as_expected(case: str, status: str) -> bool:
        listed = cannot_pass.get(case, {}).get(target)
        return status == listed if listed else status in ("pass", "skip")

    surprises = {case: detail for case, (status, detail) in results.items() if not as_expected(case, status)}
    assert not surprises, f"{len(surprises)} unexpected result(s) on {target}:\n" + "\n".join(
        f"  {case}: {results[case][0]}: {detail[:300]}" for case, detail in sorted(surprises.items()))
    for case, expected in cannot_pass.items():
        if target in expected:
            assert results[case][0] == expected[target], f"{case} on {target} now {results[case][0]}: update the list"


@pytest.mark.parametrize("target", TARGETS)
def test_bpf_conformance_suite(target):
    folder = _folder("BPF_CONFORMANCE_TESTS")
    paths = find_case_files([folder])
    assert len(paths) >= 300
    # bpf_conformance runs with its uBPF plugin's helpers (call 5 is uBPF's unwind); its values
    # are those of a little-endian runtime.
    results = _run(paths, target, RunDefaults(helpers="ubpf", results="little-endian"), folder)
    _check(results, target, BPF_CONFORMANCE_CANNOT_PASS)
    assert sum(status == "pass" for status, _ in results.values()) == len(paths) - 1  # callx


@pytest.mark.parametrize("target", TARGETS)
def test_ubpf_suite(target):
    folder = _folder("UBPF_TESTS")
    paths = [path for path in find_case_files([folder]) if "elf" not in path.relative_to(folder).parts]
    # uBPF's runner registers its test helpers and passes a NULL context without -- mem;
    # its values are those of a little-endian runtime.
    results = _run(paths, target, RunDefaults("ubpf", "null", "little-endian"), folder)
    _check(results, target, UBPF_CANNOT_PASS)


def _linux_source() -> Path:
    value = os.environ.get("LINUX_SOURCE")
    if value:
        return Path(value)
    tarballs = sorted(Path("/usr/src").glob("linux-source-*.tar.xz"))
    if not tarballs:
        pytest.skip("no kernel source: apt-get install linux-source-6.1 (.ci/run does where it can), "
                    "or set LINUX_SOURCE to a kernel tree or linux-source tarball")
    return tarballs[-1]


@pytest.fixture(scope="session")
def test_bpf_cases() -> Path:
    """The imported cases, made once per source and importer version and shared by
    every worker (a lock keeps two workers from importing at once)."""
    from harness.tools import test_bpf

    source = _linux_source()
    stat = source.stat()
    # the importer, its shim, and the checks that classify known failures (all of harness/)
    tool_files = sorted(ROOT.joinpath("harness").rglob("*.py")) + sorted(test_bpf.SHIM_DIR.iterdir())
    key = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime}".encode()
                         + b"".join(path.read_bytes() for path in tool_files)).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"harness-test-bpf-{key}"
    with open(f"{out}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "manifest.json").is_file():
            test_bpf.import_test_bpf(source, out)
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_test_bpf_suite(test_bpf_cases, target, request):
    manifest = json.loads((test_bpf_cases / "manifest.json").read_text())
    assert len(manifest["converted"]) >= 986, "at least 986 of test_bpf's 1026 tests convert"
    refused = {item["index"]: item["name"] for item in manifest["converted"]
               if item["known_failure"]}
    assert refused == TEST_BPF_REFUSED
    folders = ["classic", "ebpf"] + (["long", "huge"] if request.config.getoption("test_bpf_all") else [])
    cannot_pass = {}
    for item in manifest["converted"]:
        if item["known_failure"] and item["folder"] in folders:
            for name in item["files"]:
                cannot_pass[name] = REFUSED
    paths = find_case_files([test_bpf_cases / folder for folder in folders if (test_bpf_cases / folder).is_dir()])
    results = _run(paths, target, RunDefaults(), test_bpf_cases)
    _check(results, target, cannot_pass)
