"""Differential fuzzing: generated programs on the interpreter and every target, mismatches shrunk.

``python -m harness fuzz --arch all --seconds 60 -n 2`` runs programs from
:mod:`harness.tools.generate` (seed ``S``, ``S+1``, ...) on the interpreter in each
target's byte order and on the target, and compares the outcomes. Every mismatch
has a *signature*: the target, the first thing that differs (the kind of ending,
r0, memory, stack, maps, callee-saved registers) and the instruction forms of
its shrunk program (besides the lddw/mov/exit plumbing). Mismatches are shrunk by
delta debugging (drop instructions with jump offsets repaired, simplify
immediates and input bytes, keep the program valid), at most
:data:`SHRINKS_PER_GROUP` per (target, first difference), and each signature
becomes one ready ``.data`` case under ``findings/``, numbered after the files
already there and never overwritten (a signature already on file is not
written again). The same seed always gives the same programs.
"""
from __future__ import annotations

import multiprocessing
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness import isa, layout
from harness.cases.asm import disassemble_text
from harness.cases.mapspec import MapSpec
from harness.running.coverage import form_name
from harness.tools.generate import DEFAULT_WEIGHTS, generate
from harness.oracle.interpreter import interpret
from harness.isa import Insn, Program
from harness.oracle.maps import MapSet, resolve_map_loads
from harness.oracle.outcome import Outcome, first_difference
from harness.oracle.validator import ValidationError, ValidatorConfig, validate

FUZZ_BUDGET = 100_000  # eBPF instructions per run: generated loops are short
SHRINK_ATTEMPTS = 1500
SHRINK_SECONDS = 90.0  # a far program's checks take a second or more each: stop with what is smaller by then
SHRINKS_PER_GROUP = 3  # mismatches shrunk per (target, first difference) in one run
PLUMBING = {isa.LDDW, isa.ALU64 | isa.MOV | isa.K, isa.ALU64 | isa.MOV | isa.X, isa.JMP | isa.EXIT,
            isa.ALU64 | isa.XOR | isa.X}
# A backend to use instead of the registered one (a mutated copy: ``harness mutate --fuzz``);
# set before the worker processes fork, so they inherit it.
OVERRIDES: dict[str, Any] = {}


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
    maps: tuple[MapSpec, ...] = ()
    shrunk: bool = False

    @property
    def what(self) -> str:
        """The first thing that differs (kind, r0, memory, stack, maps, ...)."""
        return difference_text(self.expected, self.actual)[0]

    @property
    def forms(self) -> str:
        names = sorted({form_name(isa.opcode_key(self.program.insns[index]))
                        for index in self.program.instruction_starts()
                        if self.program.insns[index].opcode not in PLUMBING
                        and isa.opcode_key(self.program.insns[index]) in isa.OPCODES})
        return "+".join(names) or "plumbing only"

    @property
    def signature(self) -> tuple[str, str, str]:
        return self.target, self.what, self.forms


@dataclass
class FuzzStats:
    programs: int = 0
    runs: int = 0
    seconds: float = 0.0
    mismatches: list[Mismatch] = field(default_factory=list)  # one per signature, shrunk
    raw_mismatches: int = 0  # every (program, target) that differed
    unsupported: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)  # programs an external JIT refused
    groups: dict[tuple[str, str, str], int] = field(default_factory=dict)  # signature -> mismatches in it


def difference_text(expected: Outcome, actual: Outcome) -> tuple[str, str]:
    """(what differs, a sentence saying how): never two equal-looking summaries."""
    difference = first_difference(expected, actual, base_mem=layout.MEM_BASE, base_stack=layout.STACK_BASE)
    if difference is None:
        return "nothing", "the outcomes agree"
    where = f" at {difference.offset:#x}" if difference.offset is not None else ""
    return difference.what, (f"{difference.what}{where} differs: interpreter {difference.expected}, "
                             f"target {difference.actual}")


def _backend(target: str) -> Any:
    import arches

    return OVERRIDES.get(target) or arches.get(target)


def run_on_target(program: Program, memory: bytes, target: str,
                  maps: tuple[MapSpec, ...] = ()) -> tuple[Outcome, Outcome] | None:
    """(interpreter outcome, target outcome), or None when the backend cannot translate it
    (an unsupported instruction, or an external JIT rejecting the program)."""
    from arches.base import RejectedProgram, UnsupportedInstruction
    from harness.running.emulator import discard_engine, engine_for

    backend = _backend(target)
    order = backend.byte_order
    runnable = resolve_map_loads(program, MapSet(list(maps), order)) if maps else program
    fresh = lambda: MapSet(list(maps), order) if maps else None  # noqa: E731
    expected = interpret(runnable, memory, order, FUZZ_BUDGET, fresh())
    try:
        native = backend.compile(runnable)
    except (UnsupportedInstruction, RejectedProgram):
        return None
    engine = engine_for(backend)
    try:
        actual = engine.run(native, memory, FUZZ_BUDGET, maps=fresh())
    except Exception:
        discard_engine(backend)
        raise
    return expected, actual


def differs(program: Program, memory: bytes, target: str,
            maps: tuple[MapSpec, ...] = ()) -> tuple[Outcome, Outcome] | None:
    """The two outcomes when they differ (a backend crash counts as a difference)."""
    try:
        pair = run_on_target(program, memory, target, maps)
    except Exception as error:  # a backend that raises on a valid program is a finding too
        crashed = Outcome("fault", detail=f"backend raised {type(error).__name__}: {error}")
        return interpret(program, memory, "little", FUZZ_BUDGET,
                         MapSet(list(maps), "little") if maps else None), crashed
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


def _valid(program: Program, map_count: int = 0) -> bool:
    try:
        validate(program, ValidatorConfig(map_count=map_count))
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
           attempts: int = SHRINK_ATTEMPTS, map_count: int = 0,
           seconds: float = SHRINK_SECONDS) -> tuple[Program, bytes]:
    """A smaller program (and input) for which ``still_fails`` holds: ddmin-style passes, at most
    ``attempts`` checks and ``seconds`` of them."""
    budget = [attempts]
    deadline = time.perf_counter() + seconds

    def check(candidate: Program, data: bytes) -> bool:
        if budget[0] <= 0 or time.perf_counter() > deadline:
            budget[0] = 0
            return False
        if not _valid(candidate, map_count):
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
    maps = list(mismatch.maps)
    fresh = lambda order: MapSet(maps, order) if maps else None  # noqa: E731
    runnable = resolve_map_loads(mismatch.program, fresh("little")) if maps else mismatch.program
    little = interpret(runnable, mismatch.memory, "little", FUZZ_BUDGET, fresh("little"))
    big = interpret(runnable, mismatch.memory, "big", FUZZ_BUDGET, fresh("big"))
    _, how = difference_text(mismatch.expected, mismatch.actual)
    target, what, forms = mismatch.signature
    lines = [f"# signature: {target} | {what} | {forms}",
             "-- description",
             f"Fuzz finding on {mismatch.target}: seed {mismatch.seed}, shrunk from "
             f"{mismatch.original_size} to {len(mismatch.program.insns)} slots. First difference: {how}.",
             f"Interpreter: {mismatch.expected.summary()}; {mismatch.target}: {mismatch.actual.summary()}.",
             "The expected value below is the interpreter's: check it by hand before adding the case "
             "to the corpus."]
    lines += [f"-- map {spec.name} {spec.kind} key={spec.key_size} value={spec.value_size} "
              f"entries={spec.max_entries}" for spec in maps]
    text = disassemble_text(mismatch.program).rstrip()
    for index, spec in enumerate(maps):
        text = text.replace(f"map:{index}", f"map:{spec.name}")
    lines += ["-- asm", text, "-- mem"]
    data = mismatch.memory
    lines += [" ".join(f"{b:02x}" for b in data[i:i + 16]) for i in range(0, len(data), 16)]
    if little.kind == "return":
        lines += ["-- result", f"{little.r0:#x}"]
        if big.kind == "return" and big.r0 != little.r0:
            lines += ["-- result-be", f"{big.r0:#x}"]
    else:
        lines += ["-- error", little.summary()]
    return "\n".join(lines) + "\n"


_NUMBERED = re.compile(r"^(\d{4})-")


def existing_signatures(directory: Path) -> dict[str, Path]:
    """The signature line of every finding already in ``directory``."""
    found = {}
    for path in sorted(directory.glob("*.data")) if directory.is_dir() else []:
        first = path.read_text(errors="replace").split("\n", 1)[0]
        if first.startswith("# signature: "):
            found[first[len("# signature: "):]] = path
    return found


def write_finding(mismatch: Mismatch, directory: Path) -> tuple[Path, bool]:
    """(path, written): the next number in ``directory``, or the finding already on file."""
    directory.mkdir(parents=True, exist_ok=True)
    signature = " | ".join(mismatch.signature)
    known = existing_signatures(directory)
    if signature in known:
        return known[signature], False
    numbers = [int(match.group(1)) for path in directory.glob("*.data")
               if (match := _NUMBERED.match(path.name))]
    slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{mismatch.what}-{mismatch.forms}").strip("_")[:60]
    path = directory / f"{max(numbers, default=0) + 1:04d}-{mismatch.target}-{slug}.data"
    with path.open("x") as handle:  # never overwrite
        handle.write(finding_text(mismatch))
    return path, True


# --- the loop -------------------------------------------------------------------

def fuzz_seed(seed: int, targets: list[str], size: int = 24,
              weights: dict[str, int] | None = None,
              far: int = 0) -> tuple[list[Mismatch], list[str], list[str]]:
    """Run one generated program (with ``far`` slots of never-run code, see
    :mod:`harness.tools.generate`) on every target: the mismatches (unshrunk), the targets that
    reported an instruction unsupported and the targets (external JITs) that rejected the program."""
    generated = generate(seed, size, weights, far)
    mismatches, unsupported, rejected = [], [], []
    for target in targets:
        try:
            pair = differs(generated.program, generated.memory, target, generated.maps)
        except Exception:
            pair = None
        if pair is None:
            refusal = refusal_of(generated.program, target, generated.maps)
            if refusal == "unsupported":
                unsupported.append(target)
            elif refusal == "rejected":
                rejected.append(target)
            continue
        mismatches.append(Mismatch(target, seed, generated.program, generated.memory, pair[0], pair[1],
                                   len(generated.program.insns), maps=generated.maps))
    return mismatches, unsupported, rejected


def shrink_mismatch(mismatch: Mismatch) -> Mismatch:
    """The mismatch with its program and input shrunk, and the outcomes of the shrunk program."""
    target, maps = mismatch.target, mismatch.maps
    kind = difference_kind((mismatch.expected, mismatch.actual))  # the same kind, not another bug
    program, memory = shrink(mismatch.program, mismatch.memory,
                             lambda p, m: difference_kind(differs(p, m, target, maps)) == kind,
                             map_count=len(maps))
    expected, actual = differs(program, memory, target, maps) or (mismatch.expected, mismatch.actual)
    return Mismatch(target, mismatch.seed, program, memory, expected, actual, mismatch.original_size,
                    mismatch.detail, maps, shrunk=True)


def refusal_of(program: Program, target: str, maps: tuple[MapSpec, ...] = ()) -> str | None:
    """"unsupported" or "rejected" when the target will not translate the program, else None."""
    from arches.base import RejectedProgram, UnsupportedInstruction

    backend = _backend(target)
    try:
        backend.compile(resolve_map_loads(program, MapSet(list(maps), backend.byte_order)) if maps else program)
    except UnsupportedInstruction:
        return "unsupported"
    except RejectedProgram:
        return "rejected"
    except Exception:
        return None
    return None


def _worker(job: tuple[int, list[str], int, dict[str, int] | None, int]
            ) -> tuple[int, list[Mismatch], list[str], list[str]]:
    seed, targets, size, weights, far = job
    mismatches, unsupported, rejected = fuzz_seed(seed, targets, size, weights, far)
    return seed, mismatches, unsupported, rejected


def fuzz(targets: list[str], seed: int = 0, count: int | None = None, seconds: float | None = None,
         workers: int = 1, size: int = 24, progress: Callable[[FuzzStats], None] | None = None,
         weights: dict[str, int] | None = None, shrink_found: bool = True, far: int = 0) -> FuzzStats:
    """Fuzz until ``count`` programs or ``seconds`` have passed (whichever is given), then shrink
    up to SHRINKS_PER_GROUP mismatches per (target, first difference) and keep one per signature.
    ``far`` > 0 makes every program large (``far`` slots of never-run code between its halves)."""
    stats = FuzzStats()
    started = time.perf_counter()
    limit = count if count is not None else 1 << 62
    raw: list[Mismatch] = []

    def jobs():
        for index in range(limit):
            if seconds is not None and time.perf_counter() - started > seconds:
                return
            yield seed + index, targets, size, weights, far

    def record(result: tuple[int, list[Mismatch], list[str], list[str]]) -> None:
        _, mismatches, unsupported, rejected = result
        stats.programs += 1
        stats.runs += len(targets)
        stats.raw_mismatches += len(mismatches)
        raw.extend(mismatches)
        for target in unsupported:
            stats.unsupported[target] = stats.unsupported.get(target, 0) + 1
        for target in rejected:
            stats.rejected[target] = stats.rejected.get(target, 0) + 1
        stats.seconds = time.perf_counter() - started
        if progress:
            progress(stats)

    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        if pool is None:
            for job in jobs():
                record(_worker(job))
        else:
            # At most a few jobs in flight, so --seconds stops the run on time and results are
            # recorded in seed order (deterministic output for a given seed and count).
            pending: list = []
            for job in jobs():
                pending.append(pool.apply_async(_worker, (job,)))
                if len(pending) >= 8 * workers:
                    record(pending.pop(0).get())
            for waiting in pending:
                record(waiting.get())
        stats.seconds = time.perf_counter() - started
        raw.sort(key=lambda m: (m.seed, m.target))
        chosen: list[Mismatch] = []
        per_group: dict[tuple[str, str], int] = {}
        for mismatch in raw:
            group = (mismatch.target, mismatch.what)
            if per_group.get(group, 0) < SHRINKS_PER_GROUP:
                per_group[group] = per_group.get(group, 0) + 1
                chosen.append(mismatch)
        if shrink_found:
            chosen = pool.map(shrink_mismatch, chosen) if pool is not None else [shrink_mismatch(m) for m in chosen]
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    best: dict[tuple[str, str, str], Mismatch] = {}
    for mismatch in chosen:
        stats.groups[mismatch.signature] = stats.groups.get(mismatch.signature, 0) + 1
        kept = best.get(mismatch.signature)
        if kept is None or len(mismatch.program.insns) < len(kept.program.insns):
            best[mismatch.signature] = mismatch
    stats.mismatches = sorted(best.values(), key=lambda m: (m.target, m.seed))
    return stats


def fuzz_backend(target: str, backend: Any, seconds: float, seed: int = 0, workers: int = 1) -> FuzzStats:
    """Fuzz one target with ``backend`` in place of the registered one (a mutated copy)."""
    OVERRIDES[target] = backend
    try:
        return fuzz([target], seed=seed, seconds=seconds, workers=workers, shrink_found=False)
    finally:
        OVERRIDES.pop(target, None)
