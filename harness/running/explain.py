"""Readable failure reports: expected vs actual, the failing operand pair, and the code.

The code is shown interleaved: each eBPF instruction followed by the native
instructions it became, with their bytes, from ``NativeCode.bpf_to_native`` (every
backend built on arches/driver.py fills it; uBPF's driver reports uBPF's own). A target
that reports no such map (an external JIT without it) gets the two listings side by side instead, with a line saying why
they do not line up. A generated family case (corpus/generate_families.py) also
gets the operand pair whose result differs named, with its operands and both values.

Listings are cut at LISTING_LINES eBPF instructions with a count of the rest (a
program of a million instructions must not print hundreds of megabytes); when a
failing pair is known, the instructions shown are the ones around it. ``harness
show`` prints more. Nothing here raises: a listing that cannot be made says why in
its place.
:func:`failure_headline` is the one line pytest's short summary shows for a failing case.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from harness import isa, layout
from harness.cases.asm import disassemble, disassemble_insn
from harness.cases.corpus import describe_exception
from harness.cases.pairs import PairNote, pair_notes
from harness.isa import Program
from harness.running.conformance import INTERP, Result, load, load_checked

LISTING_LINES = 200  # eBPF instructions per listing in a failure report
NATIVE_LINES_PER_INSN = 4  # the native lines of a listing are cut at this many per eBPF instruction shown
MAX_NATIVE_INSN_BYTES = 16  # longest native instruction of any target (x86-64: 15)
MAX_BYTES_SHOWN = 16  # of one listing line (an undecodable run of bytes is printed by its text)
EDGE_LINES = 60  # native lines shown before the first and after the last eBPF instruction
_ADDRESS = re.compile(r"^(0x[0-9a-fA-F]+): (.*)$")


def side_by_side(left: list[str], right: list[str], left_title: str, right_title: str,
                 width: int = 44) -> list[str]:
    """Two listings in columns (the longer one sets the height)."""
    lines = [f"{left_title:<{width}} | {right_title}", f"{'-' * width}-+-{'-' * 40}"]
    for index in range(max(len(left), len(right))):
        a = left[index] if index < len(left) else ""
        b = right[index] if index < len(right) else ""
        lines.append(f"{a[:width]:<{width}} | {b}")
    return lines


@dataclass
class Compiled:
    """A case's program compiled for a target, or why it could not be."""

    program: Program | None = None  # as written (map loads by name), for the eBPF text
    backend: Any = None
    native: Any = None  # arches.base.NativeCode
    problem: str = ""


def compile_case(case_path: str, target: str) -> Compiled:
    """The target's native code for a case, as a run translates it (never raises)."""
    import arches
    from arches.base import BackendFailure, RejectedProgram, UnsupportedInstruction

    try:
        case = load(case_path)
        program = load_checked(case_path).runnable or case.program  # map loads resolved, as the run had it
        backend = arches.get(target)
        native = backend.compile(program)
    except (ValueError, UnsupportedInstruction, KeyError, BackendFailure) as error:  # CorpusError is a ValueError
        return Compiled(problem=f"(no native code: {error})")
    except RejectedProgram as error:
        return Compiled(problem=f"(no native code: {target} rejects the program: {error})")
    except Exception as error:  # a backend bug: show it instead of a listing
        return Compiled(problem=f"(backend failed: {describe_exception(error)})")
    return Compiled(case.program, backend, native)


@dataclass(frozen=True)
class NativeInsn:
    address: int
    encoding: bytes
    text: str


def native_instructions(backend: Any, code: bytes, start: int, end: int) -> list[NativeInsn]:
    """The backend's own listing of ``code[start:end]`` (loaded at layout.CODE_BASE), with the
    bytes of each line: from its address to the next line's. Data lines get no bytes."""
    base = layout.CODE_BASE
    lines = backend.disassemble(code[start:end], base + start)
    parsed = []
    for line in lines:
        match = _ADDRESS.match(line)
        parsed.append((int(match.group(1), 16), match.group(2)) if match else (None, line))
    result = []
    for index, (address, text) in enumerate(parsed):
        if address is None:
            result.append(NativeInsn(-1, b"", text))
            continue
        following = next((a for a, _ in parsed[index + 1:] if a is not None and a > address), base + end)
        is_data = text.lstrip().startswith((".data", "+"))  # a data range (arches/external): no instruction
        encoding = b"" if is_data else code[address - base:min(following, base + end) - base]
        result.append(NativeInsn(address, encoding, text))
    return result


def bytes_width(insns: list[NativeInsn]) -> int:
    """The width of the bytes column that fits every instruction (at most MAX_BYTES_SHOWN bytes)."""
    longest = max([min(len(insn.encoding), MAX_BYTES_SHOWN) for insn in insns] + [1])
    return 3 * longest - 1 + (3 if any(len(insn.encoding) > MAX_BYTES_SHOWN for insn in insns) else 0)


def format_native(insns: list[NativeInsn], indent: str = "      ", width: int | None = None) -> list[str]:
    """``0x100004: 41 54                push r12`` lines, the bytes in one column."""
    width = bytes_width(insns) if width is None else width
    lines = []
    for insn in insns:
        if insn.address < 0:
            lines.append(f"{indent}{insn.text}")
            continue
        shown = insn.encoding[:MAX_BYTES_SHOWN].hex(" ") + (" .." if len(insn.encoding) > MAX_BYTES_SHOWN else "")
        lines.append(f"{indent}{insn.address:#08x}: {shown:<{width}}  {insn.text}")
    return lines


def native_listing(case_path: str, target: str, limit: int | None = LISTING_LINES) -> list[str]:
    """The target's code for a case as one listing with bytes (or why there is none)."""
    compiled = compile_case(case_path, target)
    if compiled.native is None:
        return [compiled.problem]
    native = compiled.native
    end = len(native.code) if limit is None else min(len(native.code), (limit + 1) * MAX_NATIVE_INSN_BYTES)
    try:
        insns = native_instructions(compiled.backend, native.code, 0, end)
    except Exception as error:
        return [f"(no listing: {describe_exception(error)})"]
    lines = format_native(insns, indent="")
    if limit is not None and (len(lines) > limit or end < len(native.code)):
        return lines[:limit] + [f"... listing cut after {limit} instructions ({len(native.code)} bytes of code in all)"]
    return lines


def ebpf_listing(case_path: str, limit: int | None = LISTING_LINES) -> list[str]:
    """The case's eBPF program, one line per instruction, slot index first."""
    try:
        program = load(case_path).program
    except Exception as error:  # CorpusError, or whatever loading met: say so in place of a listing
        return [f"(no program: {error})"]
    insns = program.insns
    if limit is not None and len(insns) > limit + 1:  # disassemble only what is shown (+1: a whole lddw)
        program = Program(insns[:limit + 1])
    try:
        lines = [f"{index:4}: {text}" for index, text in zip(program.instruction_starts(), disassemble(program))]
    except Exception as error:
        return [f"(no listing: {describe_exception(error)})"]
    if limit is not None and len(program.insns) < len(insns):
        lines = lines[:limit] + [f"... listing cut after {limit} instructions ({len(insns)} slots in all)"]
    return lines


@dataclass
class CodeView:
    """The code of a case on a target, for people: interleaved when the target maps its code."""

    lines: list[str]
    interleaved: bool
    notes: list[str] = field(default_factory=list)  # e.g. why the view is side by side


def _ebpf_text(program: Program, slot: int) -> str:
    insns = program.insns
    following = insns[slot + 1] if insns[slot].opcode == isa.LDDW and slot + 1 < len(insns) else None
    try:
        return disassemble_insn(insns[slot], following)
    except Exception as error:
        return f"(cannot disassemble: {describe_exception(error)})"


def code_view(case_path: str, target: str, limit: int = LISTING_LINES, focus: int | None = None,
              marks: dict[int, str] | None = None) -> CodeView:
    """The eBPF program with the native code of each instruction under it.

    ``limit`` eBPF instructions are shown: from the start, or around the slot ``focus``
    when the program is longer. ``marks`` adds a note to the line of a slot. Targets
    without ``bpf_to_native`` get the side-by-side view and a note saying so.
    """
    if target == INTERP:
        return CodeView(["eBPF program:"] + ["  " + line for line in ebpf_listing(case_path, limit)], False)
    compiled = compile_case(case_path, target)
    if compiled.native is None:
        return CodeView(side_by_side(ebpf_listing(case_path, limit), [compiled.problem], "eBPF",
                                     f"{target} native"), False)
    native, program = compiled.native, compiled.program
    if not native.bpf_to_native:
        note = (f"({target} reports no eBPF-to-native map (NativeCode.bpf_to_native), so its code is shown "
                "beside the eBPF program, not under each instruction: the two columns do not line up)")
        return CodeView([note] + side_by_side(ebpf_listing(case_path, limit), native_listing(case_path, target, limit),
                                              "eBPF", f"{target} native"), False, [note])
    try:
        return CodeView(_interleave(compiled, target, limit, focus, marks or {}), True)
    except Exception as error:  # never lose the failure over its listing
        return CodeView([f"(no listing: {describe_exception(error)})"], False)


def _interleave(compiled: Compiled, target: str, limit: int, focus: int | None,
                marks: dict[int, str]) -> list[str]:
    native, program, backend = compiled.native, compiled.program, compiled.backend
    offsets = native.bpf_to_native
    starts = [slot for slot in program.instruction_starts() if slot in offsets]
    body_end = offsets.get(len(program.insns), len(native.code))
    first = 0
    if len(starts) > limit and focus is not None:  # the window around the slot that matters
        at = next((index for index, slot in enumerate(starts) if slot >= focus), len(starts) - 1)
        first = max(0, min(at - limit // 2, len(starts) - limit))
    shown = starts[first:first + limit]
    blocks: list[str | list[NativeInsn]] = []  # lines, and native instructions formatted at the end
    if first == 0 and offsets.get(0, body_end) > 0:
        blocks += ["  (before instruction 0: prologue and epilogue)", _edge(backend, native.code, 0,
                                                                             offsets.get(0, body_end))]
    elif first:
        blocks.append(f"  ... {first} instruction(s) before slot {shown[0]} not shown")
    budget, cut = NATIVE_LINES_PER_INSN * limit, ""
    for position, slot in enumerate(shown):
        following = starts[first + position + 1] if first + position + 1 < len(starts) else len(program.insns)
        start, end = offsets[slot], offsets.get(following, body_end)
        mark = f"    <- {marks[slot]}" if slot in marks else ""
        blocks.append(f"{slot:6}: {_ebpf_text(program, slot)}{mark}")
        if end <= start:
            blocks.append("      (no native instructions)")
            continue
        insns = native_instructions(backend, native.code, start, end)
        blocks.append(insns[:budget])
        budget -= len(insns)
        if budget < 0 or (budget == 0 and position + 1 < len(shown)):
            cut = (f"  ... listing cut after {position + 1} eBPF instructions: the native lines reached "
                   f"{NATIVE_LINES_PER_INSN * limit} ({len(program.insns)} slots, {len(native.code)} bytes "
                   "of code in all)")
            break
    rest = len(starts) - first - len(shown)
    if cut:
        blocks.append(cut)
    elif rest > 0:
        blocks.append(f"  ... listing cut after {limit} instructions: {rest} more ({len(program.insns)} slots, "
                      f"{len(native.code)} bytes of code in all)")
    elif body_end < len(native.code) - native.data_size:
        code_end = len(native.code) - native.data_size  # data (uBPF's helper table) comes last
        blocks += ["  (after the last instruction: the epilogue, the packet-abort path, whatever else the target appends)",
                   _edge(backend, native.code, body_end, code_end)]
        if native.data_size:
            blocks.append(f"  (then {native.data_size} bytes of data, not instructions)")
    width = bytes_width([insn for block in blocks if isinstance(block, list) for insn in block])
    lines = [f"eBPF instructions, each followed by the {target} code it became (address: bytes  instruction):"]
    for block in blocks:
        lines += [block] if isinstance(block, str) else format_native(block, width=width)
    return lines


def _edge(backend: Any, code: bytes, start: int, end: int) -> list[NativeInsn]:
    """The native code outside the body (prologue, epilogue, tail), cut at EDGE_LINES instructions."""
    insns = native_instructions(backend, code, start, min(end, start + EDGE_LINES * MAX_NATIVE_INSN_BYTES))
    if len(insns) > EDGE_LINES or start + EDGE_LINES * MAX_NATIVE_INSN_BYTES < end:
        insns = insns[:EDGE_LINES] + [NativeInsn(-1, b"", f"... cut after {EDGE_LINES} instructions")]
    return insns


# --- generated families: which operand pair failed ----------------------------------------


@dataclass(frozen=True)
class PairFailure:
    """A pair of a family case whose result differs on a target."""

    note: PairNote
    expected: str
    actual: str


def failing_pairs(case_path: str, result: Result) -> list[PairFailure]:
    """The operand pairs of a family case whose stored result (or r0 bit) differs."""
    difference = result.first_difference
    if not difference or result.target == INTERP:
        return []
    notes = pair_notes(case_path)
    if not notes:
        return []
    failures = []
    by_slot = {note.slot: note for note in notes if note.slot is not None}
    order = _byte_order(result.target)
    for word in difference.get("words", []):  # the first differing words of the stack, from r10 down
        if word["what"] != "stack":
            continue
        note = by_slot.get(layout.STACK_TOP - word["address"])
        if note is not None:
            expected, actual = (int.from_bytes(bytes.fromhex(word[key]), order) for key in ("expected", "actual"))
            failures.append(PairFailure(note, f"{expected:#x}", f"{actual:#x}"))
    by_bit = {note.r0_bit: note for note in notes if note.r0_bit is not None}
    if difference.get("what") == "r0" and by_bit:
        expected, actual = (int(difference[key], 16) for key in ("expected", "actual"))
        for bit in sorted(by_bit, reverse=True):  # the first pair has the highest bit
            if (expected ^ actual) >> bit & 1:
                failures.append(PairFailure(by_bit[bit], _taken(expected >> bit & 1), _taken(actual >> bit & 1)))
    return sorted(failures, key=lambda failure: failure.note.number)


def _taken(bit: int) -> str:
    return "taken" if bit else "not taken"


def _byte_order(target: str) -> str:
    import arches

    try:
        return arches.get(target).byte_order
    except Exception:  # an unknown or unavailable target: the words are shown as little-endian
        return "little"


def describe_pairs(failures: list[PairFailure], shown: int = 8, total: int | None = None) -> list[str]:
    """One line per failing pair: its number, its operation and operands, both values
    (``total``: how many differ in all, where more differ than the result recorded)."""
    lines = []
    for failure in failures[:shown]:
        note = failure.note
        where = f"[r10-{note.slot}]" if note.slot is not None else f"r0 bit {note.r0_bit}"
        operation = note.text.rsplit(": ", 1)[0] if note.r0_bit is not None else note.text
        lines.append(f"  pair {note.number} ({where}) differs: {operation}: expected {failure.expected}, "
                     f"got {failure.actual}")
    total = max(total or 0, len(failures))
    if total > shown and failures:
        lines.append(f"  ... and {total - min(shown, len(failures))} more differing pair(s)")
    return lines


def _store_slot(program: Program | None, note: PairNote) -> int | None:
    """The eBPF slot that stores (or decides) the pair's result: where a listing should look."""
    if program is None:
        return None
    starts = program.instruction_starts()
    if note.slot is not None:
        for slot in starts:
            insn = program.insns[slot]
            if insn.klass == isa.STX and insn.dst == 10 and insn.off == -note.slot:
                return slot
        return None
    conditional = [slot for slot in starts if program.insns[slot].klass in (isa.JMP, isa.JMP32)
                   and program.insns[slot].op not in (isa.JA, isa.CALL, isa.EXIT)]
    index = note.number - 1
    return conditional[index] if index < len(conditional) else None


# --- the failure text ------------------------------------------------------------------


def explain_failure(case_path: str, result: Result) -> str:
    """The text pytest shows for a failed or erroring item (never raises)."""
    try:
        return _explain(case_path, result)
    except Exception as error:
        return (f"{result.case} on {result.target}: {result.status.upper()}\n  {result.detail}\n"
                f"  (no listing: {describe_exception(error)})")


def _explain(case_path: str, result: Result) -> str:
    lines = [f"{result.case} on {result.target}: {result.status.upper()}"]
    if result.expected or result.actual:
        lines.append(f"  expected: {result.expected}")
        lines.append(f"  actual:   {result.actual}")
    difference = result.first_difference
    if difference:
        where = f" at {difference['offset']:#x}" if difference.get("offset") is not None else ""
        lines.append(f"  first difference in {difference['what']}{where}: "
                     f"expected [{difference['expected']}] actual [{difference['actual']}]")
    pairs = failing_pairs(case_path, result)
    stack_words = (difference or {}).get("words_differing", {}).get("stack")
    lines += describe_pairs(pairs, total=stack_words if pairs and pairs[0].note.slot is not None else None)
    if result.detail:
        lines.append("  " + result.detail.replace("\n", "\n  "))
    if result.status == "error" and "internal error" not in result.detail:
        return "\n".join(lines)
    lines.append("")
    if result.target != INTERP and result.code_size is None:
        lines += side_by_side(ebpf_listing(case_path), ["(no native code: the item ended before translation)"],
                              "eBPF", f"{result.target} native")
        return "\n".join(lines)
    focus, marks = None, {}
    if pairs:
        try:
            program = load(case_path).program
        except Exception:
            program = None
        for failure in pairs:
            slot = _store_slot(program, failure.note)
            if slot is not None:
                focus = slot if focus is None else focus
                marks[slot] = f"pair {failure.note.number}"
    lines += code_view(case_path, result.target, LISTING_LINES, focus, marks).lines
    return "\n".join(lines)


_PATH_PREFIX = re.compile(r"^\S+?\.data(?::\d+)?: ")  # "corpus/x.data: " or "corpus/x.data:12: "
_EVENT_PREFIX = re.compile(r"^(event \d+): ")
# "little-endian: expected return r0=0x2, got return r0=0x1", "the case declares ..., got ..."
_DECLARED = re.compile(r"^(?P<lead>.*?)(?:expected|the case declares) (?P<want>.+?), got (?P<got>[^;]+)")


def failure_headline(results: list[dict[str, Any]]) -> str:
    """One line for pytest's short summary: the failing target(s) and the first differing value.

    ``results`` are the failing results (JSON records) of one case, in target order:
    ``x86_64: r0: got 0xfa5ffa52decb3abb, expected 0x11decb3abb (also fails on arm64)``: the
    value the target got comes first, as the line is cut at the terminal's width.
    """
    if not results:
        return ""
    first = results[0]
    others = [result["target"] for result in results[1:]]
    return f"{first['target']}: {_first_problem(first)}" + (f" (also fails on {', '.join(others)})" if others else "")


def _first_problem(result: dict[str, Any]) -> str:
    detail = _PATH_PREFIX.sub("", (result.get("detail") or "").splitlines()[0] if result.get("detail") else "")
    difference = result.get("first_difference")
    if result["status"] == "fail" and difference:
        event = _EVENT_PREFIX.match(detail)
        where = f"{event.group(1)}: " if event else ""
        if difference["what"] == "kind":  # how the run ended: the two summaries say it
            return f"{where}got {difference['actual']}, expected {difference['expected']}"
        at = f" at {difference['offset']:#x}" if difference.get("offset") is not None else ""
        return f"{where}{difference['what']}{at}: got {difference['actual']}, expected {difference['expected']}"
    if result["status"] == "error":
        return f"error: {detail}"
    if result["status"] == "stale":
        return "stale: a recorded known failure passes now"
    declared = _DECLARED.match(detail)  # the interpreter, or any target, against the case's declaration
    if declared:
        return f"{declared['lead']}got {declared['got']}, expected {declared['want']}"
    return detail or result["status"]
