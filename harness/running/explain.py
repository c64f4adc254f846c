"""Readable failure reports: expected vs actual, and the eBPF beside the native code."""
from __future__ import annotations

from harness.cases.asm import disassemble
from harness.running.conformance import INTERP, Result, load
from harness.cases.corpus import CorpusError
from harness.isa import Program
from harness import layout

LISTING_LIMIT = 200  # eBPF slots shown in a failure report; a longer program is cut, with a count
NATIVE_BYTES_LIMIT = LISTING_LIMIT * 64  # native code disassembled for the report at most


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
    from arches.base import UnsupportedInstruction

    try:
        case = load(case_path)
        backend = arches.get(target)
        native = backend.compile(case.program)
    except (CorpusError, UnsupportedInstruction, KeyError) as error:
        return [f"(no native code: {error})"]
    except Exception as error:  # a backend bug: show it instead of a listing
        return [f"(backend failed: {type(error).__name__}: {error})"]
    lines = backend.disassemble(native.code[:NATIVE_BYTES_LIMIT], layout.CODE_BASE)
    if len(native.code) > NATIVE_BYTES_LIMIT:
        lines.append(f"... {len(native.code) - NATIVE_BYTES_LIMIT} more bytes of native code not shown")
    return lines


def ebpf_listing(case_path: str) -> list[str]:
    try:
        program = load(case_path).program
    except CorpusError as error:
        return [f"(no program: {error})"]
    total = len(program)
    if total > LISTING_LIMIT:
        program = Program(program.insns[:LISTING_LIMIT])
    lines = []
    starts = program.instruction_starts()
    for index, text in zip(starts, disassemble(program)):
        lines.append(f"{index:4}: {text}")
    if total > LISTING_LIMIT:
        lines.append(f"... {total - LISTING_LIMIT} more slots not shown ({total} in all)")
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
        native = (["(no native code: the validator rejects the program)"]
                  if result.actual == "rejected before JIT" else native_listing(case_path, result.target))
        lines.extend(side_by_side(ebpf, native, "eBPF", f"{result.target} native"))
    return "\n".join(lines)
