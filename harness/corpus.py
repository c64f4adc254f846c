"""The corpus file format: bpf_conformance / uBPF ``.data`` files plus our additions.

A file is a sequence of sections, each opened by a ``-- name`` line::

    -- asm            assembler text (harness.asm dialect)
    -- raw            one instruction per line: 8 hex bytes, or one 64-bit hex word
    -- mem            input memory as hex bytes (may span lines)
    -- result         expected r0 as u64 (decimal or 0x-hex)
    -- result-be      expected r0 on big-endian targets, where it differs
    -- error          the program must not return normally; following text is shown only
    -- description    free text shown in reports

``#`` starts a comment everywhere except inside ``-- description`` and ``-- error``
text. Every problem is a :class:`CorpusError` naming the file and line.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from harness.asm import AsmError, assemble
from harness.isa import Program

KNOWN_SECTIONS = ("asm", "raw", "mem", "result", "result-be", "error", "description")
_HEX_BYTE = re.compile(r"^[0-9a-fA-F]{2}$")


class CorpusError(ValueError):
    """A corpus file that cannot be read; str() is ``path:line: message``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        location = f"{path}:{line}" if line else path
        super().__init__(f"{location}: {message}")
        self.path = path
        self.line = line
        self.message = message


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
    error_text: str = ""
    description: str = ""
    program_line: int = 1  # file line where the program section starts

    @property
    def name(self) -> str:
        return self.path

    def expected_result(self, byte_order: str) -> int | None:
        """The declared r0 for a target of ``byte_order`` (None: nothing declared)."""
        if byte_order == "big":
            # Without -- result-be the author stated nothing order-specific: a
            # big-endian target is then held to the big-endian interpreter alone.
            return self.result_be
        return self.result


@dataclass
class _Section:
    name: str
    line: int  # line of the "-- name" header
    lines: list[tuple[int, str]] = field(default_factory=list)


def _strip_comment(text: str) -> str:
    return text.split("#", 1)[0].strip()


def _parse_integer(path: str, line: int, text: str, what: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise CorpusError(path, line, f"{what}: expected a number, got {text!r}") from None
    if not -(1 << 63) <= value < (1 << 64):
        raise CorpusError(path, line, f"{what}: {text} does not fit in 64 bits")
    return value & ((1 << 64) - 1)


def _parse_hex_bytes(path: str, section: _Section) -> bytes:
    data = bytearray()
    for line, text in section.lines:
        for token in _strip_comment(text).split():
            if token.lower().startswith("0x"):
                token = token[2:]
            if len(token) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", token):
                raise CorpusError(path, line, f"-- {section.name}: bad hex byte {token!r}")
            data.extend(bytes.fromhex(token))
    return bytes(data)


def _parse_raw(path: str, section: _Section) -> Program:
    raw = bytearray()
    for line, text in section.lines:
        tokens = _strip_comment(text).split()
        if not tokens:
            continue
        if len(tokens) == 8 and all(_HEX_BYTE.match(token) for token in tokens):
            raw.extend(bytes(int(token, 16) for token in tokens))
        elif len(tokens) == 1:
            word = _parse_integer(path, line, tokens[0], "-- raw")
            raw.extend(struct.pack("<Q", word))
        else:
            raise CorpusError(path, line, "-- raw: expected 8 hex bytes or one 64-bit hex word")
    return Program.decode(bytes(raw))


def _single_value(path: str, section: _Section) -> int:
    values = [(line, _strip_comment(text)) for line, text in section.lines if _strip_comment(text)]
    if len(values) != 1:
        raise CorpusError(path, section.line, f"-- {section.name}: expected exactly one value, "
                                              f"found {len(values)}")
    line, text = values[0]
    return _parse_integer(path, line, text, f"-- {section.name}")


def split_sections(path: str, text: str) -> list[_Section]:
    sections: list[_Section] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^--\s*(\S+)(.*)$", line)
        if header and not line.startswith("--- "):
            name = header.group(1).lower()
            if name not in KNOWN_SECTIONS:
                raise CorpusError(path, number, f"unknown section '-- {name}' (known: "
                                                f"{', '.join(KNOWN_SECTIONS)})")
            if any(section.name == name for section in sections):
                raise CorpusError(path, number, f"section '-- {name}' appears twice")
            section = _Section(name, number)
            if header.group(2).strip():
                section.lines.append((number, header.group(2).strip()))
            sections.append(section)
        elif sections:
            sections[-1].lines.append((number, line))
        elif _strip_comment(line):
            raise CorpusError(path, number, "text before the first '-- section' line")
    return sections


def parse_case(path: str, text: str) -> Case:
    """Parse one corpus file's text; raises CorpusError naming the file and line."""
    sections = {section.name: section for section in split_sections(path, text)}
    if "asm" in sections and "raw" in sections:
        raise CorpusError(path, sections["raw"].line, "a case has either -- asm or -- raw, not both")
    if "asm" in sections:
        section = sections["asm"]
        source = "\n".join(text for _, text in section.lines)
        try:
            program = assemble(source)
        except AsmError as error:
            raise CorpusError(path, section.line + error.line, error.message) from None
        kind = "asm"
    elif "raw" in sections:
        section = sections["raw"]
        source = "\n".join(text for _, text in section.lines)
        program = _parse_raw(path, section)
        kind = "raw"
    else:
        raise CorpusError(path, None, "no program: the file has neither -- asm nor -- raw")
    if not program.insns:
        raise CorpusError(path, section.line, f"no program: the -- {kind} section is empty")
    case = Case(path, program, source.strip("\n"), kind, program_line=section.line + 1)
    if "mem" in sections:
        case.memory = _parse_hex_bytes(path, sections["mem"])
    if "result" in sections:
        case.result = _single_value(path, sections["result"])
    if "result-be" in sections:
        case.result_be = _single_value(path, sections["result-be"])
    if "error" in sections:
        if "result" in sections:
            raise CorpusError(path, sections["error"].line, "a case has -- result or -- error, not both")
        case.expect_error = True
        case.error_text = "\n".join(text for _, text in sections["error"].lines).strip()
    if "description" in sections:
        case.description = "\n".join(text for _, text in sections["description"].lines).strip()
    return case


def load_case(path: Path | str) -> Case:
    """Read and parse a corpus file; unreadable files become CorpusError too."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError(name, None, f"cannot read: {error}") from None
    return parse_case(name, text)


def find_case_files(paths: list[str | Path]) -> list[Path]:
    """Every ``.data`` file under the given files/directories, sorted, without duplicates."""
    found: list[Path] = []
    for entry in paths:
        entry = Path(entry)
        if entry.is_dir():
            found.extend(sorted(entry.rglob("*.data")))
        else:
            found.append(entry)
    seen: set[Path] = set()
    unique = []
    for item in found:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique
