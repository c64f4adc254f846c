"""Readable failure reports: expected vs actual, and the eBPF beside the native code.

Listings are cut at LISTING_LINES lines with a count of the rest (a program of a
million instructions must not print hundreds of megabytes); ``harness show`` prints
more. Nothing here raises: a listing that cannot be made says why in its place.
:func:`failure_headline` is the one line pytest's short summary shows for a failing case.
"""
from __future__ import annotations

import re
from typing import Any

from harness import layout
from harness.cases.asm import disassemble
from harness.cases.corpus import describe_exception
from harness.isa import Program
from harness.running.conformance import INTERP, Result, load, load_checked

LISTING_LINES = 200  # per listing in a failure report
MAX_NATIVE_INSN_BYTES = 16  # longest native instruction of any target (x86-64: 15)


def side_by_side(left: list[str], right: list[str], left_title: str, right_title: str,
                 width: int = 44) -> list[str]:
    """Two listings in columns (the longer one sets the height)."""
    lines = [f"{left_title:<{width}} | {right_title}", f"{'-' * width}-+-{'-' * 40}"]
    for index in range(max(len(left), len(right))):
        a = left[index] if index < len(left) else ""
        b = right[index] if index < len(right) else ""
        lines.append(f"{a[:width]:<{width}} | {b}")
    return lines


def native_listing(case_path: str, target: str, limit: int | None = LISTING_LINES) -> list[str]:
    """Capstone disassembly of the target's code for a case (or why there is none)."""
    import arches
    from arches.base import BackendFailure, RejectedProgram, UnsupportedInstruction

    try:
        case = load(case_path)
        program = load_checked(case_path).runnable or case.program  # map loads resolved, as the run had it
        backend = arches.get(target)
        native = backend.compile(program)
    except (ValueError, UnsupportedInstruction, KeyError, BackendFailure) as error:  # CorpusError is a ValueError
        return [f"(no native code: {error})"]
    except RejectedProgram as error:
        return [f"(no native code: {target} rejects the program: {error})"]
    except Exception as error:  # a backend bug: show it instead of a listing
        return [f"(backend failed: {describe_exception(error)})"]
    code = native.code if limit is None else native.code[:(limit + 1) * MAX_NATIVE_INSN_BYTES]
    try:
        lines = backend.disassemble(code, layout.CODE_BASE)
    except Exception as error:
        return [f"(no listing: {describe_exception(error)})"]
    if limit is not None and (len(lines) > limit or len(code) < len(native.code)):
        shown = lines[:limit]
        return shown + [f"... listing cut after {limit} instructions ({len(native.code)} bytes of code in all)"]
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
    if result.detail:
        lines.append("  " + result.detail.replace("\n", "\n  "))
    if result.status == "error" and "internal error" not in result.detail:
        return "\n".join(lines)
    lines.append("")
    ebpf = ebpf_listing(case_path)
    if result.target == INTERP:
        lines.extend(["eBPF program:"] + ["  " + line for line in ebpf])
    else:
        native = (native_listing(case_path, result.target) if result.code_size is not None
                  else ["(no native code: the item ended before translation)"])
        lines.extend(side_by_side(ebpf, native, "eBPF", f"{result.target} native"))
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
