"""The corpus file format: bpf_conformance / uBPF ``.data`` files plus our additions.

A file is a sequence of sections, each opened by a ``-- name`` line::

    -- asm            assembler text (harness.cases.asm dialect)
    -- raw            one instruction per line: 8 hex bytes, or one 64-bit hex word
    -- mem            input memory as hex bytes (may span lines)
    -- result         expected r0 as u64 (decimal or 0x-hex)
    -- result-be      expected r0 on big-endian targets, where it differs
    -- error [KIND]   the program must not return normally; KIND, alone on the header line, is
                      reject, fault or limit and must then match; any other text (after the
                      header or on the lines below) is shown in reports only
    -- description    free text shown in reports
    -- cbpf           a classic BPF filter as ``tcpdump -ddd`` prints it (instead of asm/raw)
    -- elf            FILE [SECTION]: the program from a clang-built eBPF object (instead of asm/raw)
    -- map            NAME array|hash key=K value=V entries=N (repeatable; lddw %rN, map:NAME)
    -- events         FILE: one input per event (a .pcap capture, or hex text one per line)
    -- budget         N: the instruction budget of each run (default 1,000,000); a case that
                      is meant to loop forever sets a small one so it ends quickly
    -- result-bits    32 or 64 (default): compare only the low N bits of r0 with -- result
                      (the kernel's test_bpf compares a u32)
    -- byte-order     little|big: the case is written for targets of that byte order only
                      (test_bpf's __BIG_ENDIAN variants); targets of the other order skip it

Sections of bpf_conformance and uBPF, read with their runners' meaning:

    -- c                   C source the program was compiled from: information only
    -- no register offset  reason uBPF's JIT test runs the case with its one register map
                           only: information (every backend here has one map)
    -- no jit              reason the case cannot be JIT-compiled: it runs on the
                           interpreter only, and every JIT target reports skip with the reason
    -- error pattern       a regular expression the error message must match (re.search);
                           like -- error, the program must not return normally
    -- reload              the program is loaded a second time into the same VM without
                           unloading it: refused, as uBPF refuses it (the case expects -- error)
    -- unload              loaded, unloaded, loaded again, then run: each JIT target
                           compiles twice and must produce the same code both times

uBPF's ``-- asm @ FILE`` (also for raw, mem, c) reads the section from FILE beside the
case; ours, ``-- raw @ FILE.bin``, reads a long program in the wire format (8 bytes
per slot, as the import of the kernel's test_bpf writes its long programs). With both -- asm and -- raw the two must encode the same program. With -- error,
a -- result is what the suite's own runner reports for the failed run (uBPF prints
0xffffffffffffffff): it is shown, and the error alone is judged. uBPF's -- error text
is its own message wording, so it is shown only; -- error pattern is checked.

Several ``-- mem`` sections (or ``-- events``) make a multi-event case: the program
runs once per event with its maps persisting, and ``-- result`` then lists one r0
per event (or a single value, checked against the last event).

``#`` starts a comment everywhere except inside ``-- description`` and ``-- error``
text. Every problem is a :class:`CorpusError` naming the file and line.
"""
from __future__ import annotations

import errno
import os
import re
import struct
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from harness.cases.asm import AsmError, assemble
from harness import layout
from harness.cases.cbpf import CbpfError, CbpfRejection, compile_filter
from harness.cases.config import DEFAULT_HELPER_SET, ConfigError, RunDefaults, config_for_case
from harness.cases.elf import ElfError, load_program
from harness.isa import Program
from harness.cases.mapspec import MapError, MapSpec

PLACEHOLDER = "TODO"  # the expected value of a fresh scaffold: the case errors until it is replaced
KNOWN_SECTIONS = ("asm", "raw", "cbpf", "elf", "mem", "result", "result-be", "error", "description", "map",
                  "events", "budget", "result-bits", "byte-order", "c", "no register offset", "no jit",
                  "error pattern", "reload", "unload")
MULTI_WORD_SECTIONS = ("no register offset", "no jit", "error pattern")  # uBPF's names
LINKABLE = ("asm", "raw", "mem", "c", "cbpf")  # "-- asm @ FILE": the section's text is in FILE
REPEATABLE = ("mem", "map")
# ``-- error KIND``: how the program must end. The kind is recognised only when the rest of the
# header line is exactly one of these words, so the free text of bpf_conformance and uBPF files
# ("-- error" then a message, or "-- error pattern") keeps its old meaning: any error will do.
ERROR_KINDS = ("reject", "fault", "limit")
_HEX_BYTE = re.compile(r"^[0-9a-fA-F]{2}$")
# Resource bounds, checked before the work they would cost (a file cannot exhaust memory).
MAX_FILE_BYTES = 64 << 20  # a case file (the 20000-instruction family cases are ~1 MiB)
MAX_RAW_SLOTS = 1 << 20  # -- raw lines (the validator accepts far fewer; the rest is refused early)
MAX_INPUT_BYTES = 16 << 20  # one input: -- mem or an event (input memory is mapped below the stack)
MAX_EVENTS = 10_000  # runs of one case (each event runs on every target)
MAX_MESSAGE = 300  # characters of an error message (a huge bad token is cut, not echoed)


class CorpusError(ValueError):
    """A corpus file that cannot be read; str() is ``path:line: message``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        message = " ".join(message.split())  # one line, however the text was written
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE - 3] + "..."
        location = f"{path}:{line}" if line else path
        super().__init__(f"{location}: {message}")
        self.path = path
        self.line = line
        self.message = message


def raised_at(error: BaseException) -> str:
    """``file:line`` of the innermost frame of this project that ``error`` passed through.

    Unexpected exceptions become one-line messages; this names where to look without
    printing a traceback (library frames, e.g. in unicorn or pyelftools, are skipped).
    """
    root = Path(__file__).resolve().parents[2]
    location = ""
    for frame, line in traceback.walk_tb(error.__traceback__):
        file = Path(frame.f_code.co_filename)
        if file.is_relative_to(root) and ".venv" not in file.parts:
            location = f"{file.relative_to(root)}:{line}"
    return location or "?"


def describe_exception(error: BaseException) -> str:
    """``Type: message (raised at file:line)``, on one line and of bounded length."""
    text = " ".join(str(error).split())
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE - 3] + "..."
    return f"{type(error).__name__}{': ' + text if text else ''} (raised at {raised_at(error)})"


@dataclass
class Case:
    """One corpus case: the program, its input, and what the author expects."""

    path: str  # as given (relative paths stay relative, for stable report keys)
    program: Program
    source: str  # the program as written (asm text or raw lines), for reports
    source_kind: str  # "asm" or "raw"
    memory: bytes = b""
    result: int | None = None
    result_be: int | None = None
    expect_error: bool = False
    error_kind: str | None = None  # "reject", "fault" or "limit" (-- error KIND); None: any error
    error_text: str = ""
    description: str = ""
    program_line: int = 1  # file line where the program section starts
    maps: list[MapSpec] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)  # inputs of a multi-event case
    results: list[int] | None = None  # one declared r0 per event, when several are given
    results_be: list[int] | None = None
    budget: int = layout.DEFAULT_INSN_BUDGET  # eBPF instructions per run
    declaration_lines: dict[str, int] = field(default_factory=dict)  # "result"/"result-be"/"error" -> its line
    result_bits: int = 64  # -- result-bits: how many low bits of r0 -- result speaks for
    byte_order: str | None = None  # -- byte-order: the one byte order the case is written for
    helpers: str = DEFAULT_HELPER_SET  # the helper set its calls use (harness.toml or the run's choice)
    error_pattern: str | None = None  # -- error pattern: a regular expression for the error message
    error_result: int | None = None  # -- result given beside -- error (the suite runner's value)
    no_jit: str | None = None  # -- no jit: why JIT targets skip the case
    reload: bool = False  # -- reload: loaded twice without unloading (refused)
    unload: bool = False  # -- unload: loaded, unloaded and loaded again
    c_source: str = ""  # -- c: the C source, for information
    notes: list[str] = field(default_factory=list)  # information sections (e.g. -- no register offset)
    load_rejection: str = ""  # a refusal before the eBPF validator (the classic BPF checks)
    null_context: bool = False  # r1 = r2 = 0 at entry: no input memory and empty-memory = "null"
    results_little_endian: bool = False  # results = "little-endian": -- result speaks for little-endian targets

    @property
    def entry_pointer(self) -> int:
        """r1 at entry: the input memory's address, or 0 for a null context."""
        return 0 if self.null_context else layout.MEM_BASE

    @property
    def declares_something(self) -> bool:
        """Whether the case states an expectation (-- result, -- result-be or an error)."""
        return (self.expect_error or self.result is not None or self.result_be is not None
                or self.results is not None or self.results_be is not None)

    @property
    def inputs(self) -> list[bytes]:
        """The input memory of every run: one for an ordinary case."""
        return self.events or [self.memory]

    def expected_results(self, byte_order: str) -> list[int | None]:
        """The declared r0 of every event (None where nothing is declared)."""
        count = len(self.inputs)
        every = self.results
        if byte_order == "big" and (self.results_be is not None or self.result_be is not None
                                    or self.results_little_endian):
            every = self.results_be
        if every is not None:
            return list(every)
        return [None] * (count - 1) + [self.expected_result(byte_order)]

    @property
    def name(self) -> str:
        return self.path

    def declaration_line(self, byte_order: str) -> int | None:
        """The line of the section that declares the outcome for ``byte_order`` (None: none does)."""
        lines = self.declaration_lines
        if self.expect_error:
            return lines.get("error") or lines.get("error pattern")
        return (lines.get("result-be") if byte_order == "big" else None) or lines.get("result")

    def expected_result(self, byte_order: str) -> int | None:
        """The declared r0 for a target of ``byte_order`` (None: nothing declared)."""
        if byte_order == "big" and (self.result_be is not None or self.results_little_endian):
            return self.result_be
        # Without -- result-be the declared value holds in both byte orders.
        return self.result

    @property
    def declares_big_endian(self) -> bool:
        """Whether the case gives a big-endian value of its own (-- result-be)."""
        return self.result_be is not None or self.results_be is not None

    @property
    def result_mask(self) -> int:
        """The bits of r0 that -- result speaks for."""
        return (1 << self.result_bits) - 1

    def runs_on(self, byte_order: str) -> bool:
        """False when the case is written for the other byte order only (-- byte-order)."""
        return self.byte_order is None or self.byte_order == byte_order


@dataclass
class _Section:
    name: str
    line: int  # line of the "-- name" header
    lines: list[tuple[int, str]] = field(default_factory=list)
    source: str | None = None  # the linked file ("-- asm @ FILE") its lines come from
    binary: bytes | None = None  # "-- raw @ FILE.bin": the program's bytes (8 per slot)


def _strip_comment(text: str) -> str:
    return text.split("#", 1)[0].strip()


def _parse_integer(path: str, line: int, text: str, what: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise CorpusError(path, line, f"{what}: expected a number, got {text!r}") from None
    if not -(1 << 63) <= value < (1 << 64):
        raise CorpusError(path, line, f"{what}: {text} does not fit in 64 bits "
                                      f"({-(1 << 63)} to {(1 << 64) - 1})")
    return value & ((1 << 64) - 1)


def _parse_hex_bytes(path: str, section: _Section) -> bytes:
    data = bytearray()
    for line, text in section.lines:
        text = _strip_comment(text)
        if ":" in text:  # a hexdump line (tcpdump -x, as uBPF's .hex files): drop the offset
            text = text[text.rindex(":") + 1:]
        for token in text.split():
            if token.lower().startswith("0x"):
                token = token[2:]
            if len(token) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", token):
                raise CorpusError(*_location(path, section, line), f"-- {section.name}: bad hex byte {token!r}")
            data.extend(bytes.fromhex(token))
            if len(data) > MAX_INPUT_BYTES:
                raise CorpusError(path, line, f"-- {section.name}: more than {MAX_INPUT_BYTES} bytes "
                                              "(the largest input a case may give)")
    return bytes(data)


def _parse_raw(path: str, section: _Section) -> tuple[Program, list[int]]:
    """The program of a -- raw section and the line of each slot."""
    if section.binary is not None:
        return Program.decode(section.binary), [section.line] * (len(section.binary) // 8)
    raw = bytearray()
    if len(section.lines) > MAX_RAW_SLOTS:  # counted before any line is decoded
        raise CorpusError(path, section.line, f"-- raw: {len(section.lines)} lines; at most "
                                              f"{MAX_RAW_SLOTS} instructions")
    lines = []
    for line, text in section.lines:
        tokens = _strip_comment(text).split()
        if not tokens:
            continue
        if len(tokens) == 8 and all(_HEX_BYTE.match(token) for token in tokens):
            raw.extend(bytes(int(token, 16) for token in tokens))
        elif len(tokens) == 1:
            word = _parse_integer(*_location(path, section, line), tokens[0], "-- raw")
            raw.extend(struct.pack("<Q", word))
        else:
            raise CorpusError(*_location(path, section, line), "-- raw: expected 8 hex bytes or one 64-bit hex word")
        lines.append(line)
    return Program.decode(bytes(raw)), lines


def _assemble_section(path: str, section: _Section, map_names: dict[str, int]) -> tuple[Program, list[int]]:
    """The program of a -- asm section and the file line of each slot."""
    source = "\n".join(text for _, text in section.lines)
    first = section.lines[0][0] if section.lines else section.line + 1
    slot_lines: list[int] = []
    try:
        program = assemble(source, map_names, slot_lines)
    except AsmError as error:
        raise CorpusError(*_location(path, section, first + error.line - 1), error.message) from None
    return program, [first + line - 1 for line in slot_lines]


def _check_asm_matches_raw(path: str, asm: _Section, asm_program: Program, asm_lines: list[int],
                           raw: _Section, raw_program: Program, raw_lines: list[int]) -> None:
    """bpf_conformance files may give both forms: they must encode the same program."""
    for slot, (mine, theirs) in enumerate(zip(asm_program.insns, raw_program.insns)):
        if mine != theirs:
            asm_at = "{}:{}".format(*_location(path, asm, asm_lines[slot]))
            raise CorpusError(*_location(path, raw, raw_lines[slot]),
                              f"-- raw disagrees with -- asm at instruction {slot}: "
                              f"raw {theirs.encode().hex()}, "
                              f"asm ({asm_at}) {mine.encode().hex()}")
    if len(asm_program) != len(raw_program):
        raise CorpusError(path, raw.line, f"-- raw has {len(raw_program)} instructions, "
                                          f"-- asm (line {asm.line}) {len(asm_program)}")


def _values(path: str, section: _Section) -> list[int]:
    """Whitespace-separated numbers (one per event of a multi-event case)."""
    for line, text in section.lines:
        if PLACEHOLDER in _strip_comment(text).split():  # a `harness new` scaffold not filled in yet
            raise CorpusError(path, line, f"-- {section.name}: the expected value is still {PLACEHOLDER}: "
                                          "write the value reasoned by hand (never one copied from a run)")
    values = [_parse_integer(path, line, token, f"-- {section.name}")
              for line, text in section.lines for token in _strip_comment(text).split()]
    if not values:
        raise CorpusError(path, section.line, f"-- {section.name}: expected a value")
    return values


def _read_events(path: str, section: _Section) -> list[bytes]:
    """``-- events FILE``: a pcap capture or a text file with one hex input per line."""
    names = [_strip_comment(text) for _, text in section.lines if _strip_comment(text)]
    if len(names) != 1:
        raise CorpusError(path, section.line, "-- events: expected one file name")
    file = Path(path).parent / names[0]
    try:
        with open(file, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise CorpusError(path, section.line, f"-- events: cannot read {file}: {_os_reason(file, error)}") from None
    if len(data) > MAX_FILE_BYTES:
        raise CorpusError(path, section.line, f"-- events: {file} is larger than {MAX_FILE_BYTES} bytes")
    if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        try:
            packets = read_pcap(data)
        except ValueError as error:
            raise CorpusError(path, section.line, f"-- events: {file}: {error}") from None
        if not packets:
            raise CorpusError(path, section.line, f"-- events: {file} holds no packet")
        _check_events(path, section.line, file, packets)
        return packets
    events = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        text = _strip_comment(line).replace(" ", "")
        if not text:
            continue
        try:
            events.append(bytes.fromhex(text))
        except ValueError:
            raise CorpusError(str(file), number, "not a line of hex bytes") from None
    if not events:
        raise CorpusError(path, section.line, f"-- events: {file} holds no event")
    _check_events(path, section.line, file, events)
    return events


def _check_events(path: str, line: int, file: Path, events: list[bytes]) -> None:
    if len(events) > MAX_EVENTS:
        raise CorpusError(path, line, f"-- events: {file} holds {len(events)} events; at most {MAX_EVENTS}")
    largest = max(len(event) for event in events)
    if largest > MAX_INPUT_BYTES:
        raise CorpusError(path, line, f"-- events: {file} has an event of {largest} bytes; "
                                      f"at most {MAX_INPUT_BYTES}")


def read_pcap(data: bytes) -> list[bytes]:
    """The packets of a classic libpcap capture (either byte order, us or ns stamps)."""
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    if len(data) < 24:
        raise ValueError("truncated pcap header")
    packets, offset = [], 24
    while offset < len(data):
        if offset + 16 > len(data):
            raise ValueError(f"truncated record header at byte {offset}")
        captured = struct.unpack_from(order + "I", data, offset + 8)[0]
        if offset + 16 + captured > len(data):
            raise ValueError(f"record at byte {offset} runs past the end of the file")
        packets.append(data[offset + 16:offset + 16 + captured])
        offset += 16 + captured
    return packets


def _header(line: str) -> tuple[str, str] | None:
    """(section name, rest of the line) for a ``-- name ...`` line, else None."""
    if not line.startswith("--") or line.startswith("--- "):
        return None
    text = line[2:].strip()
    if not text:
        return None
    lowered = " ".join(text.lower().split())
    for name in MULTI_WORD_SECTIONS:
        if lowered == name or lowered.startswith(name + " "):
            words = len(name.split())
            return name, " ".join(text.split()[words:])
    word, _, rest = text.partition(" ")
    return word.lower(), rest.strip()


def _linked_lines(path: str, number: int, name: str, target: str) -> tuple[str, list[tuple[int, str]]]:
    """The lines of FILE in uBPF's ``-- name @ FILE``: (its path, numbered lines)."""
    target = target.split("#", 1)[0].strip()
    if not target:
        raise CorpusError(path, number, f"-- {name} @: expected a file name")
    file = Path(path).parent / target
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError(path, number, f"-- {name} @ {target}: cannot read {file}: {error}") from None
    return str(file), list(enumerate(text.splitlines(), start=1))


def _linked_binary(path: str, number: int, target: str) -> tuple[str, bytes]:
    """``-- raw @ FILE.bin``: the program in the wire format, 8 bytes per slot (ours)."""
    file = Path(path).parent / target.split("#", 1)[0].strip()
    try:
        data = file.read_bytes()
    except OSError as error:
        raise CorpusError(path, number, f"-- raw @ {file.name}: cannot read {file}: {error.strerror}") from None
    if len(data) % 8:
        raise CorpusError(path, number, f"-- raw @ {file.name}: {len(data)} bytes is not a whole number "
                                        f"of 8-byte instructions")
    return str(file), data


def split_sections(path: str, text: str) -> list[_Section]:
    sections: list[_Section] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _header(line)
        if header:
            name, rest = header
            if name not in KNOWN_SECTIONS:
                raise CorpusError(path, number, f"unknown section '-- {name}' (known: "
                                                f"{', '.join(KNOWN_SECTIONS)})")
            if name not in REPEATABLE and any(section.name == name for section in sections):
                raise CorpusError(path, number, f"section '-- {name}' appears twice")
            section = _Section(name, number)
            if rest.startswith("@") and name == "raw" and rest[1:].split("#")[0].strip().endswith(".bin"):
                section.source, section.binary = _linked_binary(path, number, rest[1:])
            elif rest.startswith("@") and name in LINKABLE:
                section.source, section.lines = _linked_lines(path, number, name, rest[1:])
            elif rest:
                section.lines.append((number, rest))
            sections.append(section)
        elif sections:
            if sections[-1].source is not None and _strip_comment(line):
                raise CorpusError(path, number, f"-- {sections[-1].name} @ FILE takes its text from "
                                                f"the file, not from the lines below it")
            sections[-1].lines.append((number, line))
        elif _strip_comment(line):
            raise CorpusError(path, number, "text before the first '-- section' line")
    return sections


def _location(path: str, section: _Section, line: int) -> tuple[str, int]:
    """Where a line of a section is: the case file, or the file a link names."""
    return (section.source, line) if section.source is not None else (path, line)


def parse_case(path: str, text: str, defaults: RunDefaults = RunDefaults()) -> Case:
    """Parse one corpus file's text; raises CorpusError naming the file and line.

    ``defaults`` are the run's settings for a case whose folder chooses none
    (harness.toml beside the cases, harness/cases/config.py).
    """
    every = split_sections(path, text)
    sections = {section.name: section for section in every}
    given = [name for name in ("asm", "raw", "cbpf", "elf") if name in sections]
    if len(given) > 1 and given[:2] != ["asm", "raw"] or len(given) > 2:
        raise CorpusError(path, sections[given[-1]].line,
                          f"a case has one program section, not -- {' and -- '.join(given)}")
    maps = []
    for section in (s for s in every if s.name == "map"):
        declaration = " ".join(_strip_comment(text) for _, text in section.lines).strip()
        try:
            spec = MapSpec.parse(declaration)
        except MapError as error:
            raise CorpusError(path, section.line, f"-- map: {error}") from None
        if any(other.name == spec.name for other in maps):
            raise CorpusError(path, section.line, f"-- map: {spec.name} declared twice")
        maps.append(spec)
    load_rejection = ""
    map_names = {spec.name: index for index, spec in enumerate(maps)}
    if "asm" in sections:
        section = sections["asm"]
        source = "\n".join(text for _, text in section.lines)
        program, asm_lines = _assemble_section(path, section, map_names)
        kind = "asm"
        if "raw" in sections:
            raw_program, raw_lines = _parse_raw(path, sections["raw"])
            _check_asm_matches_raw(path, section, program, asm_lines, sections["raw"], raw_program, raw_lines)
    elif "raw" in sections:
        section = sections["raw"]
        source = "\n".join(text for _, text in section.lines)
        program, _ = _parse_raw(path, section)
        kind = "raw"
    elif "cbpf" in sections:
        section = sections["cbpf"]
        source = "\n".join(text for _, text in section.lines)
        try:
            program = compile_filter(source)
        except CbpfRejection as refusal:  # the kernel refuses the filter: a validator outcome
            where = "{}:{}".format(*_location(path, section, section.lines[refusal.line - 1][0]
                                               if refusal.line <= len(section.lines) else section.line))
            program = Program(())
            load_rejection = f"classic BPF check ({where}): {refusal.message}"
        except CbpfError as error:
            line = section.lines[error.line - 1][0] if 0 < error.line <= len(section.lines) else section.line
            raise CorpusError(*_location(path, section, line), f"-- cbpf: {error.message}") from None
        kind = "cbpf"
    elif "elf" in sections:
        section = sections["elf"]
        source = "\n".join(_strip_comment(text) for _, text in section.lines).strip()
        words = source.split()
        if not 1 <= len(words) <= 2:
            raise CorpusError(path, section.line, "-- elf: expected FILE [SECTION]")
        try:
            program = load_program(Path(path).parent / words[0], words[1] if len(words) > 1 else None,
                                   [spec.name for spec in maps])
        except ElfError as error:
            raise CorpusError(path, section.line, f"-- elf: {error}") from None
        kind = "elf"
    else:
        found = ", ".join(f"-- {section.name}" for section in every) or "no section at all"
        raise CorpusError(path, every[0].line if every else 1,
                          f"no program: the file has no -- asm, -- raw, -- cbpf or -- elf section ({found})")
    if not program.insns and not load_rejection:
        raise CorpusError(path, section.line, f"no program: the -- {kind} section is empty")
    case = Case(path, program, source.strip("\n"), kind, program_line=section.line + 1, maps=maps,
                load_rejection=load_rejection)
    memory_sections = [s for s in every if s.name == "mem"]
    if len(memory_sections) > MAX_EVENTS:
        raise CorpusError(path, memory_sections[MAX_EVENTS].line,
                          f"more than {MAX_EVENTS} -- mem sections (events)")
    inputs = [_parse_hex_bytes(path, s) for s in memory_sections]
    if "events" in sections:
        if inputs:
            raise CorpusError(path, sections["events"].line, "a case has -- mem or -- events, not both")
        inputs = _read_events(path, sections["events"])
    if inputs:
        case.memory = inputs[0]
        if len(inputs) > 1:
            case.events = inputs
    for name in ("result", "result-be", "error", "error pattern"):
        if name in sections:
            case.declaration_lines[name] = sections[name].line
    for name in ("result", "result-be"):
        if name in sections:
            values = _values(path, sections[name])
            if len(values) == 1:
                setattr(case, name.replace("-", "_"), values[0])
            elif len(values) == len(case.inputs):
                setattr(case, name.replace("-", "_"), values[-1])
                setattr(case, "results" if name == "result" else "results_be", values)
            else:
                raise CorpusError(path, sections[name].line, f"-- {name}: {len(values)} values for "
                                                              f"{len(case.inputs)} events (give one, or one per event)")
    _read_error_sections(path, sections, case)
    _read_runner_sections(path, sections, case)
    if "budget" in sections:
        values = _values(path, sections["budget"])
        if len(values) != 1 or not 1 <= values[0] <= 100_000_000:
            raise CorpusError(path, sections["budget"].line, "-- budget: one number from 1 to 100000000 "
                                                             "(eBPF instructions per run)")
        case.budget = values[0]
    if "result-bits" in sections:
        values = _values(path, sections["result-bits"])
        if values not in ([32], [64]):
            raise CorpusError(path, sections["result-bits"].line, "-- result-bits: 32 or 64")
        case.result_bits = values[0]
    if "byte-order" in sections:
        words = _words(sections["byte-order"])
        if words not in (["little"], ["big"]):
            raise CorpusError(path, sections["byte-order"].line, "-- byte-order: little or big")
        case.byte_order = words[0]
    if "description" in sections:
        case.description = "\n".join(text for _, text in sections["description"].lines).strip()
    try:
        settings = config_for_case(path)
    except ConfigError as error:
        raise CorpusError(path, None, f"settings: {error}") from None
    case.helpers = settings.helpers or defaults.helpers
    empty_memory = settings.empty_memory or defaults.empty_memory
    case.null_context = empty_memory == "null" and "mem" not in sections and "events" not in sections
    case.results_little_endian = (settings.results or defaults.results) == "little-endian"
    return case


def _words(section: _Section) -> list[str]:
    return [word for _, text in section.lines for word in _strip_comment(text).split()]


def _section_text(section: _Section) -> str:
    return "\n".join(text for _, text in section.lines).strip()


def _read_error_sections(path: str, sections: dict[str, _Section], case: Case) -> None:
    """-- error, -- error pattern, and a -- result beside them."""
    if "error" in sections or "error pattern" in sections:
        case.expect_error = True
        if "error" in sections:
            section = sections["error"]
            lines = list(section.lines)
            if lines and lines[0][0] == section.line and lines[0][1].strip() in ERROR_KINDS:
                case.error_kind = lines.pop(0)[1].strip()  # -- error reject|fault|limit
            case.error_text = "\n".join(text for _, text in lines).strip()
        if "error pattern" in sections:
            section = sections["error pattern"]
            pattern = _section_text(section)
            if not pattern:
                raise CorpusError(path, section.line, "-- error pattern: expected a regular expression")
            try:
                re.compile(pattern)
            except re.error as error:
                raise CorpusError(path, section.line, f"-- error pattern: not a regular expression: {error}") from None
            case.error_pattern = pattern
        if case.result is not None or case.results is not None:
            # uBPF's runner prints a value for a failed run too: kept for reports, not judged
            case.error_result, case.result, case.results = case.result, None, None
        if "result-be" in sections:
            raise CorpusError(path, sections["result-be"].line, "-- result-be with -- error: "
                                                                 "a failing run has no result to declare")


def _read_runner_sections(path: str, sections: dict[str, _Section], case: Case) -> None:
    """The sections about how a suite's runner treats the case (uBPF, bpf_conformance)."""
    if "c" in sections:
        case.c_source = _section_text(sections["c"])
    if "no register offset" in sections:
        case.notes.append(f"no register offset: {_section_text(sections['no register offset'])}".strip())
    if "no jit" in sections:
        case.no_jit = _section_text(sections["no jit"]) or "(no reason given)"
    for name in ("reload", "unload"):
        if name in sections:
            if _words(sections[name]):
                raise CorpusError(path, sections[name].line, f"-- {name} takes no text")
            setattr(case, name, True)
    if case.reload and not case.expect_error:
        raise CorpusError(path, sections["reload"].line, "-- reload: a second load without unloading is "
                                                          "refused, so the case expects -- error")


def load_case(path: Path | str, defaults: RunDefaults = RunDefaults()) -> Case:
    """Read and parse a corpus file; unreadable files become CorpusError too."""
    name = str(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise CorpusError(name, None, f"cannot read: {_os_reason(Path(path), error)}") from None
    if len(data) > MAX_FILE_BYTES:
        raise CorpusError(name, None, f"larger than {MAX_FILE_BYTES} bytes: not read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise CorpusError(name, line, f"cannot read: not UTF-8 text (byte {error.start})") from None
    try:
        return parse_case(name, text, defaults)
    except CorpusError:
        raise
    except Exception as error:  # a parser bug (or no memory left) still names the file
        raise CorpusError(name, None, f"cannot parse: {describe_exception(error)}") from None


def _os_reason(path: Path, error: OSError) -> str:
    """Why a path cannot be read, in words (a directory, a dangling or looping link...)."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python < 3.13 reports a loop this way
            return "a symbolic link loop"
        except OSError as reason:
            if reason.errno == errno.ELOOP:
                return "a symbolic link loop"
            return f"a dangling symbolic link (to {os.readlink(path)})"
    if path.is_dir():
        return "a directory, not a case file"
    return error.strerror or str(error)


# Cases that cost seconds per target (megabytes of native code) live in directories of this name:
# a search of a parent directory leaves them out, naming the directory (or a file in it) runs them.
LARGE_DIR = "large"


def in_large_dir(path: Path, searched: Path) -> bool:
    """Whether ``path``, found by searching the directory ``searched``, lies in a LARGE_DIR below it."""
    return LARGE_DIR in path.relative_to(searched).parts[:-1]


def find_case_files(paths: list[str | Path]) -> list[Path]:
    """Every ``.data`` file under the given files/directories (those in LARGE_DIR directories
    only when such a directory is given), sorted, without duplicates."""
    found: list[Path] = []
    for entry in paths:
        entry = Path(entry)
        if entry.is_dir():
            found.extend(path for path in sorted(entry.rglob("*.data")) if not in_large_dir(path, entry))
        else:
            found.append(entry)
    seen: set[Path] = set()
    unique = []
    for item in found:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique
