"""Differential fuzzing: generated programs on the interpreter and every target, mismatches shrunk.

``python -m harness fuzz --arch all --seconds 60 -n 2`` runs programs from
:mod:`harness.tools.generate` (seed ``S``, ``S+1``, ...) on the interpreter in each
target's byte order and on the target, compares the outcomes, and shrinks every
mismatch by delta debugging (drop instructions with jump offsets repaired,
simplify immediates and input bytes, keep the program valid) into a ready
``.data`` case under ``findings/``. The same seed always gives the same programs.
"""
from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness import isa, layout
from harness.cases.asm import disassemble_text
from harness.tools.generate import generate
from harness.oracle.interpreter import interpret
from harness.isa import Insn, Program
from harness.oracle.outcome import Outcome, first_difference
from harness.oracle.validator import ValidationError, validate

FUZZ_BUDGET = 100_000  # eBPF instructions per run: generated loops are short
SHRINK_ATTEMPTS = 1500
SHRINK_SECONDS = 90.0  # a far program's checks take a second or more each: stop with what is smaller by then


@dataclass
class Mismatch:
    target: str
    seed: int
    program: Program
    memory: bytes
    expected: Outcome
    actual: Outcome
    original_size: int
    detail: str = ""


@dataclass
class FuzzStats:
    programs: int = 0
    runs: int = 0
    seconds: float = 0.0
    mismatches: list[Mismatch] = field(default_factory=list)
    unsupported: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)  # programs an external JIT refused


def run_on_target(program: Program, memory: bytes, target: str) -> tuple[Outcome, Outcome] | None:
    """(interpreter outcome, target outcome), or None when the backend cannot translate it
    (an unsupported instruction, or an external JIT rejecting the program)."""
    import arches
    from arches.base import RejectedProgram, UnsupportedInstruction
    from harness.running.emulator import discard_engine, engine_for

    backend = arches.get(target)
    expected = interpret(program, memory, backend.byte_order, FUZZ_BUDGET)
    try:
        native = backend.compile(program)
    except (UnsupportedInstruction, RejectedProgram):
        return None
    engine = engine_for(backend)
    try:
        actual = engine.run(native, memory, FUZZ_BUDGET)
    except Exception:
        discard_engine(backend)
        raise
    return expected, actual


def differs(program: Program, memory: bytes, target: str) -> tuple[Outcome, Outcome] | None:
    """The two outcomes when they differ (a backend crash counts as a difference)."""
    try:
        pair = run_on_target(program, memory, target)
    except Exception as error:  # a backend that raises on a valid program is a finding too
        crashed = Outcome("fault", detail=f"backend raised {type(error).__name__}: {error}")
        return interpret(program, memory, "little", FUZZ_BUDGET), crashed
    if pair is None:
        return None
    expected, actual = pair
    if first_difference(expected, actual, base_mem=layout.MEM_BASE, base_stack=layout.STACK_BASE):
        return pair
    return None


def difference_kind(pair: tuple[Outcome, Outcome] | None) -> str | None:
    """What a mismatch differs in, coarsely ("r0", "stack", "kind", "helper", ...; None: no mismatch)."""
    if pair is None:
        return None
    difference = first_difference(*pair, base_mem=layout.MEM_BASE, base_stack=layout.STACK_BASE)
    return difference.what.split()[0] if difference is not None else "crash"


# --- shrinking ------------------------------------------------------------------

def remove_instruction(program: Program, index: int) -> Program | None:
    """The program without the instruction starting at ``index``, jumps repaired."""
    width = 2 if program.insns[index].opcode == isa.LDDW else 1
    return remove_slots(program, index, index + width)


def remove_slots(program: Program, start: int, stop: int) -> Program | None:
    """The program without slots ``start``..``stop`` (whole instructions), jumps into them
    redirected to what follows and the others repaired; None when a jump no longer fits."""
    insns = program.insns
    width = stop - start
    moved = lambda slot: slot - width if slot >= stop else min(slot, start)  # noqa: E731
    result = []
    for old_index in program.instruction_starts():
        if start <= old_index < stop:
            continue
        insn = insns[old_index]
        target = isa.jump_target(insn, old_index)
        if target is not None:
            new_index, new_target = moved(old_index), moved(target)
            delta = new_target - new_index - 1
            if insn.klass == isa.JMP32 and insn.op == isa.JA or insn.op == isa.CALL:
                insn = Insn(insn.opcode, insn.dst, insn.src, insn.off, delta)
            elif -0x8000 <= delta <= 0x7FFF:
                insn = Insn(insn.opcode, insn.dst, insn.src, delta, insn.imm)
            else:
                return None
        result.append(insn)
        if insn.opcode == isa.LDDW and old_index + 1 < len(insns):
            result.append(insns[old_index + 1])
    return Program(tuple(result))


def _valid(program: Program) -> bool:
    try:
        validate(program)
    except ValidationError:
        return False
    return True


def _simplifiable_immediate(insn: Insn, index: int) -> bool:
    """An immediate that is an operand (not a jump offset, helper number, width or atomic op)."""
    if insn.imm in (0, 1) or isa.jump_target(insn, index) is not None:
        return False
    if insn.klass in (isa.ALU, isa.ALU64):
        return insn.op != isa.END and insn.source == isa.K
    if insn.klass == isa.ST:
        return True
    if insn.klass in (isa.JMP, isa.JMP32):
        return insn.op not in (isa.CALL, isa.EXIT) and insn.source == isa.K
    return False


def shrink(program: Program, memory: bytes, still_fails: Callable[[Program, bytes], bool],
           attempts: int = SHRINK_ATTEMPTS, seconds: float = SHRINK_SECONDS) -> tuple[Program, bytes]:
    """A smaller program (and input) for which ``still_fails`` holds: ddmin-style passes, at most
    ``attempts`` checks and ``seconds`` of them."""
    budget = [attempts]
    deadline = time.perf_counter() + seconds

    def check(candidate: Program, data: bytes) -> bool:
        if budget[0] <= 0 or time.perf_counter() > deadline:
            budget[0] = 0
            return False
        if not _valid(candidate):
            return False
        budget[0] -= 1
        return still_fails(candidate, data)

    program = _drop_runs(program, lambda candidate: check(candidate, memory))
    changed = True
    while changed and budget[0] > 0:
        changed = False
        # 1. drop instructions, last first (the folding tail goes early)
        for index in reversed(program.instruction_starts()):
            if index >= len(program.insns):
                continue
            candidate = remove_instruction(program, index)
            if candidate is not None and check(candidate, memory):
                program, changed = candidate, True
        # 2. simplify immediates and 64-bit constants
        for index in program.instruction_starts():
            insn = program.insns[index]
            if insn.opcode == isa.LDDW:
                for value in (0, 1):
                    if program.lddw_value(index) == value:
                        break
                    pair = isa.lddw_pair(insn.dst, value)
                    candidate = Program(program.insns[:index] + pair + program.insns[index + 2:])
                    if check(candidate, memory):
                        program, changed = candidate, True
                        break
            elif _simplifiable_immediate(insn, index):
                for value in (0, 1):
                    simpler = Insn(insn.opcode, insn.dst, insn.src, insn.off, value)
                    candidate = Program(program.insns[:index] + (simpler,) + program.insns[index + 1:])
                    if check(candidate, memory):
                        program, changed = candidate, True
                        break
        # 3. zero the input memory when it does not matter
        if any(memory) and check(program, bytes(len(memory))):
            memory, changed = bytes(len(memory)), True
    return program, memory


def _drop_runs(program: Program, keeps: Callable[[Program], bool], smallest: int = 64) -> Program:
    """Drop long runs of instructions first (halves, quarters, ... down to ``smallest`` slots):
    a far program's tens of thousands of filler slots go in a few dozen runs, not one by one."""
    run = len(program.insns) // 2
    while run >= smallest:
        start = 0
        while start < len(program.insns):
            starts = program.instruction_starts()
            begin = next((index for index in starts if index >= start), len(program.insns))
            end = next((index for index in starts if index >= begin + run), len(program.insns))
            candidate = remove_slots(program, begin, end) if begin < end else None
            if candidate is not None and candidate.insns and keeps(candidate):
                program = candidate  # the next run starts where this one did
            else:
                start = begin + run
        run //= 2
    return program


# --- findings -------------------------------------------------------------------

def finding_text(mismatch: Mismatch) -> str:
    """A ready corpus case for a shrunk mismatch (expected r0 from the interpreter: verify it)."""
    expected = mismatch.expected
    little = interpret(mismatch.program, mismatch.memory, "little", FUZZ_BUDGET)
    big = interpret(mismatch.program, mismatch.memory, "big", FUZZ_BUDGET)
    difference = first_difference(expected, mismatch.actual, base_mem=layout.MEM_BASE,
                                  base_stack=layout.STACK_BASE)
    where = "" if difference is None else (
        f" First difference in {difference.what}"
        + (f" at {difference.offset:#x}" if difference.offset is not None else "")
        + f": expected {difference.expected}, got {difference.actual}.")
    lines = ["-- description",
             f"Fuzz finding on {mismatch.target}: seed {mismatch.seed}, shrunk from "
             f"{mismatch.original_size} to {len(mismatch.program.insns)} slots.",
             f"Interpreter: {expected.summary()}; {mismatch.target}: {mismatch.actual.summary()}.{where}",
             "The expected value below is the interpreter's: check it by hand before adding the case "
             "to the corpus.", "-- asm", disassemble_text(mismatch.program).rstrip(), "-- mem"]
    data = mismatch.memory
    lines += [" ".join(f"{b:02x}" for b in data[i:i + 16]) for i in range(0, len(data), 16)]
    if little.kind == "return":
        lines += ["-- result", f"{little.r0:#x}"]
        if big.kind == "return" and big.r0 != little.r0:
            lines += ["-- result-be", f"{big.r0:#x}"]
    else:
        lines += ["-- error", little.summary()]
    return "\n".join(lines) + "\n"


def write_finding(mismatch: Mismatch, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{mismatch.target}-seed{mismatch.seed}.data"
    path.write_text(finding_text(mismatch))
    return path


# --- the loop -------------------------------------------------------------------

def fuzz_seed(seed: int, targets: list[str], size: int = 24,
              far: int = 0) -> tuple[list[Mismatch], list[str], list[str]]:
    """Run one generated program (with ``far`` slots of never-run code, see
    :mod:`harness.tools.generate`) on every target; shrink what differs.

    Returns the mismatches, the targets that reported an instruction unsupported and the
    targets (external JITs) that rejected the program.
    """
    generated = generate(seed, size, far)
    mismatches, unsupported, rejected = [], [], []
    for target in targets:
        try:
            pair = differs(generated.program, generated.memory, target)
        except Exception:
            pair = None
        if pair is None:
            refusal = refusal_of(generated.program, target)
            if refusal == "unsupported":
                unsupported.append(target)
            elif refusal == "rejected":
                rejected.append(target)
            continue
        kind = difference_kind(pair)  # shrink to the same kind of difference, not to another bug
        program, memory = shrink(generated.program, generated.memory,
                                 lambda p, m, t=target: difference_kind(differs(p, m, t)) == kind)
        expected, actual = differs(program, memory, target) or pair
        mismatches.append(Mismatch(target, seed, program, memory, expected, actual,
                                   len(generated.program.insns)))
    return mismatches, unsupported, rejected


def refusal_of(program: Program, target: str) -> str | None:
    """"unsupported" or "rejected" when the target will not translate the program, else None."""
    import arches
    from arches.base import RejectedProgram, UnsupportedInstruction

    try:
        arches.get(target).compile(program)
    except UnsupportedInstruction:
        return "unsupported"
    except RejectedProgram:
        return "rejected"
    except Exception:
        return None
    return None


def _worker(job: tuple[int, list[str], int, int]) -> tuple[int, list[Mismatch], list[str], list[str]]:
    seed, targets, size, far = job
    mismatches, unsupported, rejected = fuzz_seed(seed, targets, size, far)
    return seed, mismatches, unsupported, rejected


def fuzz(targets: list[str], seed: int = 0, count: int | None = None, seconds: float | None = None,
         workers: int = 1, size: int = 24, progress: Callable[[FuzzStats], None] | None = None,
         far: int = 0) -> FuzzStats:
    """Fuzz until ``count`` programs or ``seconds`` have passed (whichever is given); ``far`` > 0
    makes every program large (``far`` slots of never-run code between its halves)."""
    stats = FuzzStats()
    started = time.perf_counter()
    limit = count if count is not None else 1 << 62

    def jobs():
        for index in range(limit):
            if seconds is not None and time.perf_counter() - started > seconds:
                return
            yield seed + index, targets, size, far

    def record(result: tuple[int, list[Mismatch], list[str], list[str]]) -> None:
        _, mismatches, unsupported, rejected = result
        stats.programs += 1
        stats.runs += len(targets)
        stats.mismatches.extend(mismatches)
        for target in unsupported:
            stats.unsupported[target] = stats.unsupported.get(target, 0) + 1
        for target in rejected:
            stats.rejected[target] = stats.rejected.get(target, 0) + 1
        stats.seconds = time.perf_counter() - started
        if progress:
            progress(stats)

    if workers <= 1:
        for job in jobs():
            record(_worker(job))
    else:
        # At most a few jobs in flight, so --seconds stops the run on time and results are
        # recorded in seed order (deterministic output for a given seed and count).
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pending: list = []
            for job in jobs():
                pending.append(pool.apply_async(_worker, (job,)))
                if len(pending) >= 8 * workers:
                    record(pending.pop(0).get())
            for waiting in pending:
                record(waiting.get())
    stats.seconds = time.perf_counter() - started
    stats.mismatches.sort(key=lambda m: (m.seed, m.target))
    return stats
