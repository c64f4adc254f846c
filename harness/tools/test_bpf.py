"""Import the Linux kernel's own BPF test suite (lib/test_bpf.c) as corpus cases.

``python -m harness import-test-bpf LINUX_SRC_OR_TARBALL --out DIR`` finds
lib/test_bpf.c in a kernel tree or a linux-source tarball, compiles its test table
against the harness's own small shim of kernel macros (harness/tools/test_bpf_c/)
with the system C compiler, and runs the result: so every test, including the
programs the fill helpers generate, is read exactly as the kernel module builds it.
The table is compiled twice, imitating a little-endian and a big-endian kernel, so
the ``#ifdef __BIG_ENDIAN`` branches become ``-- result-be`` (when only the
expected values differ) or a pair of cases with ``-- byte-order`` (when the
program or data differ).

What a test becomes (the module's run_one()/generate_test_data() semantics):

* each subtest is one event: its input memory is the first ``data_size`` bytes of
  the test's data (the skb's linear data), and its expected r0 one ``-- result``
  value; test_bpf compares a ``u32``, so every case says ``-- result-bits 32``;
* FLAG_NO_DATA runs with a NULL context (the output folder's harness.toml sets
  ``empty-memory = "null"``); FLAG_LARGE_MEM gets ``data_size`` bytes of memory;
* FLAG_EXPECTED_FAIL becomes ``-- error`` (the kernel refuses the filter);
* classic filters are ``-- cbpf`` sections, eBPF programs ``-- raw`` sections (in a
  ``.bin`` file beside the case when longer than 4096 instructions).

Skipped, with the reason in ``manifest.json``: classic filters that read skb
metadata through ancillary loads (SKF_AD_*, except ALU_XOR_X, which needs none),
loads relative to the link-layer or network header (SKF_LL_OFF, SKF_NET_OFF, and
any LD_ABS below SKF_AD_OFF), and tests whose skb carries paged data
(FLAG_SKB_FRAG). The generated cases are GPL-derived data: keep them out of git.
"""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from harness.oracle.validator import MAX_SLOTS

TEST_BPF_PATH = "lib/test_bpf.c"
SHIM_DIR = Path(__file__).resolve().parent / "test_bpf_c"
MAX_DATA = 128  # test_bpf's MAX_DATA: the data array, and the largest skb populate_skb builds
LONG_PROGRAM = 4096  # eBPF programs longer than this go to a .bin file and the long/ folder
HUGE_PROGRAM = 65536  # longer ones go to huge/: minutes per target each, so CI leaves them out

# test_bpf.c's flags and test types (its FLAG_* BIT(n) and enum values).
FLAG_NO_DATA, FLAG_EXPECTED_FAIL, FLAG_SKB_FRAG, FLAG_VERIFIER_ZEXT, FLAG_LARGE_MEM = 1, 2, 4, 8, 16
CLASSIC, INTERNAL = 64, 128
# Classic offsets (include/uapi/linux/filter.h).
SKF_AD_OFF, SKF_NET_OFF, SKF_LL_OFF = -0x1000, -0x100000, -0x200000
SKF_AD_NAMES = {0: "PROTOCOL", 4: "PKTTYPE", 8: "IFINDEX", 12: "NLATTR", 16: "NLATTR_NEST", 20: "MARK",
                24: "QUEUE", 28: "HATYPE", 32: "RXHASH", 36: "CPU", 40: "ALU_XOR_X", 44: "VLAN_TAG",
                48: "VLAN_TAG_PRESENT", 52: "PAY_OFFSET", 56: "RANDOM", 60: "VLAN_TPID"}
SKF_AD_ALU_XOR_X = 40
CONFIG_TEXT = """# Written by python -m harness import-test-bpf: test_bpf runs FLAG_NO_DATA tests with a NULL context.
empty-memory = "null"
"""


class KernelTestImportError(RuntimeError):
    """The import cannot proceed (no source, no compiler, a table that will not build)."""


@dataclass
class Skipped:
    index: int
    name: str
    reason: str


@dataclass
class Converted:
    index: int
    name: str
    files: list[str]
    slots: int  # program length (eBPF slots, or classic instructions)
    kind: str  # "classic" or "ebpf"
    folder: str  # classic, ebpf, long or huge
    # Why the harness cannot pass this test as test_bpf runs it (None: it should pass):
    # test_bpf loads eBPF programs without the verifier, so it runs some the harness's
    # validator refuses, and programs longer than the validator's limit.
    known_failure: str | None = None


@dataclass
class ImportResult:
    out: Path
    total: int
    converted: list[Converted] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        folders: dict[str, int] = {}
        for case in self.converted:
            folders[case.folder] = folders.get(case.folder, 0) + 1
        by_folder = ", ".join(f"{name} {count}" for name, count in sorted(folders.items()))
        known = [case for case in self.converted if case.known_failure]
        too_long = sum(1 for case in known if case.slots > MAX_SLOTS)
        return (f"test_bpf: {self.total} tests, {len(self.converted)} converted ({by_folder}), "
                f"{len(self.skipped)} skipped; {len(known)} converted tests cannot pass here "
                f"({too_long} longer than the validator's {MAX_SLOTS:,} slots, {len(known) - too_long} "
                f"refused by the validator though test_bpf runs them unverified); "
                f"see {self.out / 'manifest.json'}; {self.seconds:.1f} s")


# --- finding and compiling the table ---------------------------------------------

def read_test_bpf(source: Path) -> str:
    """The text of lib/test_bpf.c from a kernel tree (a directory) or a source tarball."""
    if source.is_dir():
        path = source / TEST_BPF_PATH
        candidates = [path] if path.is_file() else sorted(source.glob(f"*/{TEST_BPF_PATH}"))
        if not candidates:
            raise KernelTestImportError(f"{source}: no {TEST_BPF_PATH} in this directory or one level below")
        return candidates[0].read_text(encoding="utf-8", errors="replace")
    if not source.is_file():
        raise KernelTestImportError(f"{source}: no such file or directory")
    try:
        with tarfile.open(source) as archive:  # any compression tarfile knows (xz, gz, bz2)
            for member in archive:
                if member.isfile() and (member.name == TEST_BPF_PATH
                                        or member.name.endswith("/" + TEST_BPF_PATH)):
                    handle = archive.extractfile(member)
                    assert handle is not None
                    return handle.read().decode("utf-8", errors="replace")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise KernelTestImportError(f"{source}: not a readable tar archive: {error}") from None
    raise KernelTestImportError(f"{source}: the archive holds no {TEST_BPF_PATH}")


def table_region(text: str) -> str:
    """test_bpf.c from after its #include lines to the end of the tests[] array."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("static struct bpf_test tests[]")), None)
    if start is None:
        raise KernelTestImportError(f"{TEST_BPF_PATH}: no 'static struct bpf_test tests[]' table")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("};")), None)
    if end is None:
        raise KernelTestImportError(f"{TEST_BPF_PATH}: the tests[] table never closes")
    first = max((i for i, line in enumerate(lines[:start]) if line.startswith("#include")), default=-1) + 1
    kept = [line for line in lines[first:end + 1] if not line.startswith("#define pr_fmt")]
    return "\n".join(kept) + "\n"


def compiler() -> str:
    found = shutil.which("gcc") or shutil.which("cc")
    if found is None:
        raise KernelTestImportError("no C compiler: import-test-bpf compiles the test table with gcc or cc "
                           "(Debian: apt-get install gcc)")
    return found


def dump_table(region: str, big_endian: bool, workdir: Path) -> Path:
    """Build the table with the shim (in the given byte order), run it, and return the
    file holding its output: one JSON line per test."""
    table = workdir / "test_bpf_table.c"
    table.write_text(region)
    order = "be" if big_endian else "le"
    binary = workdir / f"dump_{order}"
    command = [compiler(), "-O1", "-w", "-std=gnu11", f"-I{SHIM_DIR}", f"-I{workdir}",
               f'-DTEST_BPF_TABLE="{table.name}"', str(SHIM_DIR / "dump_tests.c"), "-o", str(binary)]
    if big_endian:
        command.insert(1, "-DHARNESS_BIG_ENDIAN")
    built = subprocess.run(command, capture_output=True, text=True)
    if built.returncode:
        errors = "\n".join(line for line in built.stderr.splitlines() if "error" in line)[:2000]
        raise KernelTestImportError(f"compiling the test table failed (a kernel newer than the shim knows?):\n{errors}")
    output = workdir / f"tests_{order}.jsonl"
    with output.open("wb") as sink:
        ran = subprocess.run([str(binary)], stdout=sink, stderr=subprocess.PIPE)
    if ran.returncode:
        raise KernelTestImportError(f"running the table dump failed (status {ran.returncode}): "
                                 f"{ran.stderr.decode(errors='replace')[:500]}")
    return output


# --- converting one test -------------------------------------------------------------

def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def skip_reason(test: dict[str, Any]) -> str | None:
    """Why a test cannot run here, or None. Tests the kernel must refuse are always kept."""
    if test["aux"] & FLAG_EXPECTED_FAIL:
        return None
    if test["aux"] & FLAG_SKB_FRAG:
        return "paged skb data (FLAG_SKB_FRAG): the harness's input memory is one linear buffer"
    if not test["classic"]:
        return None
    for pc, (code, _, _, k) in enumerate(test["insns"]):
        offset = _s32(k)
        packet_load = code & 0x07 == 0 and code & 0xE0 in (0x20, 0x40)  # LD ABS or IND
        if packet_load and code & 0xE0 == 0x20 and SKF_AD_OFF <= offset < 0:
            extension = offset - SKF_AD_OFF
            if extension in SKF_AD_NAMES and extension != SKF_AD_ALU_XOR_X:
                return (f"instruction {pc}: ancillary load SKF_AD_{SKF_AD_NAMES[extension]} reads skb "
                        f"metadata or the CPU, which the harness does not model")
        if (packet_load or code == 0xB1) and offset < SKF_AD_OFF:  # LD ABS/IND, LDX MSH
            return (f"instruction {pc}: load at {offset} is relative to the link-layer or network header "
                    f"(SKF_LL_OFF/SKF_NET_OFF), which the harness does not model")
    indirect = any(code & 0x07 == 0 and code & 0xE0 == 0x40 for code, _, _, _ in test["insns"])
    for pc, (code, _, _, k) in enumerate(test["insns"]):
        if indirect and code in (0x00, 0x01) and _s32(k) < SKF_AD_OFF:  # ld #k / ldx #k, then LD_IND [x + ..]
            return (f"instruction {pc}: the constant {_s32(k)} makes an LD_IND offset relative to the "
                    f"link-layer or network header (SKF_LL_OFF/SKF_NET_OFF), which the harness does not model")
    return None


def _subtests(test: dict[str, Any]) -> list[tuple[int, int]]:
    """The subtests run_one() runs: the first always, then until a zero {data_size, result}."""
    found = []
    for number, (size, result) in enumerate(test["subtests"]):
        if number > 0 and size == 0 and result == 0:
            break
        found.append((size, result))
    return found


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:60].rstrip("_") or "test"


def _hex_lines(data: bytes) -> list[str]:
    return [" ".join(f"{byte:02x}" for byte in data[start:start + 16]) for start in range(0, len(data), 16)] or []


def decode_test(line: str) -> dict[str, Any]:
    """One JSON line of the table dump, with its program decoded: ``bytes`` (8 per
    instruction), ``slots`` (their count) and, for a classic filter, ``insns``
    as (code, jt, jf, k) tuples."""
    test = json.loads(line)
    raw = bytes.fromhex(test.pop("program"))
    test["bytes"] = raw
    test["slots"] = len(raw) // 8
    test["insns"] = list(struct.iter_unpack("<HBBI", raw)) if test["classic"] else None
    return test


def _inputs(test: dict[str, Any]) -> list[bytes] | None:
    """The input memory of each subtest (None: FLAG_NO_DATA, a NULL context)."""
    if test["aux"] & FLAG_NO_DATA:
        return None
    data = bytes.fromhex(test["data"])
    inputs = []
    for size, _ in _subtests(test):
        if test["aux"] & FLAG_LARGE_MEM:
            inputs.append(bytes(size))  # kmalloc'd memory: the tests write before they read
        else:
            inputs.append(data[:size])
    return inputs


def _results(test: dict[str, Any]) -> list[int]:
    results = [result for _, result in _subtests(test)]
    if test["aux"] & FLAG_NO_DATA:  # every subtest runs the same program on the same NULL context
        if len(set(results)) != 1:
            raise KernelTestImportError(f"test {test['index']}: FLAG_NO_DATA subtests expect different results")
        return results[:1]
    return results


def folder_for(test: dict[str, Any]) -> str:
    slots = test["slots"]
    if test["classic"]:
        return "classic"
    if slots > HUGE_PROGRAM:
        return "huge"
    return "long" if slots > LONG_PROGRAM else "ebpf"


def case_text(test: dict[str, Any], program_file: str | None, big_only: str | None,
              results_be: list[int] | None, failure: str | None = None) -> str:
    """The .data text of one test (``program_file``: the .bin the -- raw section links to)."""
    flags = [name for bit, name in ((FLAG_NO_DATA, "FLAG_NO_DATA"), (FLAG_EXPECTED_FAIL, "FLAG_EXPECTED_FAIL"),
                                    (FLAG_VERIFIER_ZEXT, "FLAG_VERIFIER_ZEXT"), (FLAG_LARGE_MEM, "FLAG_LARGE_MEM"))
             if test["aux"] & bit]
    kind = "CLASSIC" if test["classic"] else "INTERNAL"
    lines = [f"# Linux lib/test_bpf.c, test {test['index']}: {test['descr']}",
             "# Imported by python -m harness import-test-bpf (GPL-2.0 source: do not commit)."]
    if test["classic"]:
        lines.append("-- cbpf")
        lines.append(str(len(test["insns"])))
        lines += [f"{code} {jt} {jf} {k}" for code, jt, jf, k in test["insns"]]
    elif program_file is not None:
        lines.append(f"-- raw @ {program_file}")
    else:
        lines.append("-- raw")
        lines += [f"0x{word:016x}" for (word,) in struct.iter_unpack("<Q", test["bytes"])]
    inputs = _inputs(test)
    for memory in inputs or []:
        lines.append("-- mem")
        lines += _hex_lines(memory)
    if test["aux"] & FLAG_EXPECTED_FAIL:
        lines += ["-- error", f"the kernel refuses this filter (test_bpf expects errno {test['expected_errcode']})"]
    else:
        lines += ["-- result", " ".join(f"{value:#x}" for value in _results(test))]
        if results_be is not None:
            lines += ["-- result-be", " ".join(f"{value:#x}" for value in results_be)]
        lines += ["-- result-bits", "32"]
    if big_only is not None:
        lines += ["-- byte-order", big_only]
    lines += ["-- description",
              f"test_bpf #{test['index']} {test['descr']} ({kind}{', ' + ', '.join(flags) if flags else ''}; "
              f"{len(_subtests(test))} subtest(s); test_bpf compares the low 32 bits of r0)"]
    if failure:
        lines.append(f"Known failure here: {failure}.")
    return "\n".join(lines) + "\n"


def convert(test: dict[str, Any], test_be: dict[str, Any] | None,
            failure: str | None = None) -> list[tuple[str, str, bytes | None]]:
    """The files of one test: [(file name, .data text, .bin bytes or None)].

    ``test_be`` is the big-endian build's version of the test, or None where it is
    the same. When only the expected results differ they become -- result-be; when
    the program or its data differ, each byte order gets a case of its own.
    """
    stem = f"{test['index']:04d}_{_slug(test['descr'])}"
    variants: list[tuple[dict[str, Any], str, str | None, list[int] | None]]
    if test_be is None:
        variants = [(test, stem, None, None)]
    elif (test_be["bytes"], test_be["data"], [size for size, _ in _subtests(test_be)]) == \
            (test["bytes"], test["data"], [size for size, _ in _subtests(test)]):
        variants = [(test, stem, None, _results(test_be))]
    else:
        variants = [(test, stem, "little", None), (test_be, stem + ".be", "big", None)]
    files = []
    for version, name, only, results_be in variants:
        binary = program_file = None
        if not version["classic"] and version["slots"] > LONG_PROGRAM:
            binary, program_file = version["bytes"], name + ".bin"
        files.append((name + ".data", case_text(version, program_file, only, results_be, failure), binary))
    return files


def known_failure(test: dict[str, Any]) -> str | None:
    """Why the harness refuses a test test_bpf runs (or accepts one it refuses), or None.

    test_bpf hands eBPF programs to the interpreter and JITs without the verifier, so it
    runs programs the harness's validator (like the kernel's verifier) refuses.
    """
    from harness.cases.cbpf import CbpfError, compile_filter
    from harness.isa import Program
    from harness.oracle.validator import ValidationError, validate

    expected_fail = bool(test["aux"] & FLAG_EXPECTED_FAIL)
    try:
        if test["classic"]:
            lines = [str(len(test["insns"]))] + [" ".join(map(str, insn)) for insn in test["insns"]]
            compile_filter("\n".join(lines))
        elif test["slots"] > MAX_SLOTS:
            return f"{test['slots']} instructions: longer than the validator's {MAX_SLOTS:,}-slot limit (the kernel's)"
        elif test["slots"] <= LONG_PROGRAM:  # long programs come from fill helpers: checked when run
            validate(Program.decode(test["bytes"]))
        elif (marker := zero_extension_marker(test["bytes"])) is not None:  # what fill helpers emit that
            return (f"the harness refuses it, test_bpf runs it unverified: reserved field imm is not zero "
                    f"in mov32 (instruction {marker}: the verifier's zero-extension marker)")
    except (CbpfError, ValidationError) as error:
        message = getattr(error, "message", str(error))
        return None if expected_fail else f"the harness refuses it, test_bpf runs it unverified: {message}"
    return "the harness accepts what the kernel refuses" if expected_fail else None


def zero_extension_marker(code: bytes) -> int | None:
    """The slot of the first ``mov32 dst, src`` with imm 1 (the kernel's BPF_ZEXT_REG, which only
    its verifier inserts; RFC 9669 reserves the field) in little-endian ``code``, or None.

    A byte scan, not the validator: test_bpf's fill helpers emit it (ATOMIC_W_CMPXCHG), and
    validating its 150 programs of up to 199,587 slots would double the import's time.
    """
    at = code.find(b"\xbc")
    while at != -1:
        if at % 8 == 0 and code[at + 2:at + 8] == b"\0\0\x01\0\0\0":
            return at // 8
        at = code.find(b"\xbc", at + 1)
    return None


def _line_count(path: Path) -> int:
    with path.open("rb") as lines:
        return sum(1 for _ in lines)


def import_test_bpf(source: Path, out: Path) -> ImportResult:
    """Read lib/test_bpf.c from ``source``, convert it, and write cases and manifest.json to ``out``."""
    import time

    started = time.perf_counter()
    region = table_region(read_test_bpf(source))
    result = ImportResult(out, 0)
    out.mkdir(parents=True, exist_ok=True)
    (out / "harness.toml").write_text(CONFIG_TEXT)
    with tempfile.TemporaryDirectory(prefix="test_bpf_") as scratch:
        little_file = dump_table(region, False, Path(scratch))
        big_file = dump_table(region, True, Path(scratch))
        if _line_count(little_file) != _line_count(big_file):
            raise KernelTestImportError("the little- and big-endian builds of the table hold different numbers of tests")
        with little_file.open() as little_lines, big_file.open() as big_lines:
            for line, line_be in zip(little_lines, big_lines):
                test = decode_test(line)
                test_be = None if line_be == line else decode_test(line_be)
                result.total += 1
                reason = skip_reason(test)
                if reason is not None:
                    result.skipped.append(Skipped(test["index"], test["descr"], reason))
                    continue
                folder = folder_for(test)
                (out / folder).mkdir(exist_ok=True)
                failure = known_failure(test)
                files = convert(test, test_be, failure)
                for name, text, binary in files:
                    (out / folder / name).write_text(text)
                    if binary is not None:
                        (out / folder / (name.removesuffix(".data") + ".bin")).write_bytes(binary)
                result.converted.append(Converted(test["index"], test["descr"],
                                                  [f"{folder}/{name}" for name, _, _ in files],
                                                  test["slots"], "classic" if test["classic"] else "ebpf",
                                                  folder, failure))
    result.seconds = time.perf_counter() - started
    manifest = {
        "source": str(source), "tests": result.total,
        "converted": [case.__dict__ for case in result.converted],
        "skipped": [skip.__dict__ for skip in result.skipped],
        "folders": {"classic": "classic BPF filters", "ebpf": f"eBPF programs of up to {LONG_PROGRAM} slots",
                    "long": f"eBPF programs of {LONG_PROGRAM + 1} to {HUGE_PROGRAM} slots",
                    "huge": f"eBPF programs of {HUGE_PROGRAM + 1} to {MAX_SLOTS} slots (minutes per target each)"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return result
