"""Readable failure reports: expected vs actual, and the eBPF beside the native code."""
from __future__ import annotations

from harness.cases.asm import disassemble
from harness.running.conformance import INTERP, Result, load, load_checked
from harness.cases.corpus import CorpusError
from harness import layout


def side_by_side(left: list[str], right: list[str], left_title: str, right_title: str,
                 width: int = 44) -> list[str]:
    """Two listings in columns (the longer one sets the height)."""
    lines = [f"{left_title:<{width}} | {right_title}", f"{'-' * width}-+-{'-' * 40}"]
    for index in range(max(len(left), len(right))):
        a = left[index] if index < len(left) else ""
        b = right[index] if index < len(right) else ""
        lines.append(f"{a[:width]:<{width}} | {b}")
    return lines


def native_listing(case_path: str, target: str) -> list[str]:
    """Capstone disassembly of the target's code for a case (or why there is none)."""
    import arches
    from arches.base import BackendFailure, RejectedProgram, UnsupportedInstruction

    try:
        case = load(case_path)
        program = load_checked(case_path).runnable or case.program  # map loads resolved, as the run had it
        backend = arches.get(target)
        native = backend.compile(program)
    except (CorpusError, UnsupportedInstruction, KeyError, BackendFailure) as error:
        return [f"(no native code: {error})"]
    except RejectedProgram as error:
        return [f"(no native code: {target} rejects the program: {error})"]
    except Exception as error:  # a backend bug: show it instead of a listing
        return [f"(backend failed: {type(error).__name__}: {error})"]
    return backend.disassemble(native.code, layout.CODE_BASE)


def ebpf_listing(case_path: str) -> list[str]:
    try:
        program = load(case_path).program
    except CorpusError as error:
        return [f"(no program: {error})"]
    lines = []
    starts = program.instruction_starts()
    for index, text in zip(starts, disassemble(program)):
        lines.append(f"{index:4}: {text}")
    return lines


def explain_failure(case_path: str, result: Result) -> str:
    """The text pytest shows for a failed or erroring item."""
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
        lines.extend(side_by_side(ebpf, native_listing(case_path, result.target),
                                  "eBPF", f"{result.target} native"))
    return "\n".join(lines)
