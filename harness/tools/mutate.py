"""Mutation testing of the backends: does the corpus catch the bugs real JITs shipped?

Each :class:`Mutant` is one deliberate bug, modelled on a bug class from
DESIGN.md (missing zero-extension, shift edge, immediate width, 32-bit move
moving 64 bits, JMP32 reading the upper half, wrong condition or offset, div/mod
edge, byte-swap width, store width, atomic fetch returning the new value, ...).
It is injected at run time into a *copy* of a backend, whose ``translate`` then
emits the code the buggy JIT would emit for the affected instruction, i.e. the
translation of a substituted instruction sequence. Files are never edited.

For each (mutant, architecture) the corpus runs until the first case that fails
(the mutant is *killed* by it) or to the end (it *survived*). Only cases whose
program the mutant changes can kill it, so only those run.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Iterable

from harness import isa
from harness.isa import Insn, Program

# A rewrite sees one instruction and returns (before, replacement, after) or None
# (unchanged). ``before``/``after`` may only jump within themselves.
Rewrite = Callable[[Insn, str], tuple[list[Insn], Insn, list[Insn]] | None]


@dataclass(frozen=True)
class Mutant:
    name: str
    bug_class: str
    description: str
    rewrite: Rewrite
    arches: tuple[str, ...] | None = None  # None: every backend

    def applies_to(self, arch: str) -> bool:
        return self.arches is None or arch in self.arches


def apply(program: Program, rewrite: Rewrite, byte_order: str) -> Program:
    """The program with ``rewrite`` applied to every instruction, jumps re-linked."""
    starts = program.instruction_starts()
    pieces: dict[int, tuple[list[Insn], Insn, list[Insn]]] = {}
    for index in starts:
        changed = rewrite(program.insns[index], byte_order)
        if changed is not None:
            pieces[index] = changed
    if not pieces:
        return program
    # New position of every old slot (a jump to a rewritten instruction lands on its 'before').
    new_position: dict[int, int] = {}
    core_position: dict[int, int] = {}
    cursor = 0
    for index in range(len(program.insns)):
        new_position[index] = cursor
        before, _, after = pieces.get(index, ([], None, []))
        core_position[index] = cursor + len(before)
        cursor += len(before) + 1 + len(after)
    new_position[len(program.insns)] = cursor
    out: list[Insn] = []
    for index, insn in enumerate(program.insns):
        before, core, after = pieces.get(index, ([], insn, []))
        out.extend(before)
        # The core keeps the original's slot in old coordinates, so a rewrite may move its target.
        target = isa.jump_target(core, index) if index in starts else None
        if target is not None:
            delta = new_position[target] - core_position[index] - 1
            if core.klass == isa.JMP32 and core.op == isa.JA or core.op == isa.CALL:
                core = Insn(core.opcode, core.dst, core.src, core.off, delta)
            else:
                core = Insn(core.opcode, core.dst, core.src, delta, core.imm)
        out.append(core)
        out.extend(after)
    return Program(tuple(out))


# --- the catalogue ------------------------------------------------------------------

def _swap_op(klass: int, old: int, new: int, source: int | None = None) -> Rewrite:
    """Translate ``klass|old`` as ``klass|new`` (same operands)."""
    def rewrite(insn: Insn, _: str):
        if insn.klass == klass and insn.op == old and (source is None or insn.source == source) \
                and not (insn.klass in (isa.ALU, isa.ALU64) and insn.off):
            return [], Insn(klass | new | insn.source, insn.dst, insn.src, insn.off, insn.imm), []
        return None
    return rewrite


def _widen_alu32(op: int) -> Rewrite:
    """A 32-bit ALU op computed in 64 bits: the upper half is neither cleared nor ignored."""
    def rewrite(insn: Insn, _: str):
        if insn.klass == isa.ALU and insn.op == op and not insn.off:
            return [], Insn(isa.ALU64 | op | insn.source, insn.dst, insn.src, 0, insn.imm), []
        return None
    return rewrite


def _jmp32_as_jmp64(insn: Insn, _: str):
    if insn.klass == isa.JMP32 and insn.op not in (isa.JA, isa.CALL, isa.EXIT):
        return [], Insn(isa.JMP | insn.op | insn.source, insn.dst, insn.src, insn.off, insn.imm), []
    return None


def _change_size(mode: int, klass: int, old: int, new: int) -> Rewrite:
    def rewrite(insn: Insn, _: str):
        if insn.klass == klass and insn.mode == mode and insn.size == old:
            return [], Insn(klass | mode | new, insn.dst, insn.src, insn.off, insn.imm), []
        return None
    return rewrite


def _sign_load_as_zero(insn: Insn, _: str):
    if insn.klass == isa.LDX and insn.mode == isa.MEMSX:
        return [], Insn(isa.LDX | isa.MEM | insn.size, insn.dst, insn.src, insn.off, insn.imm), []
    return None


def _movsx_as_mov(insn: Insn, _: str):
    if insn.klass in (isa.ALU, isa.ALU64) and insn.op == isa.MOV and insn.off:
        return [], Insn(insn.opcode, insn.dst, insn.src, 0, 0), []
    return None


def _signed_as_unsigned(insn: Insn, _: str):
    if insn.klass in (isa.ALU, isa.ALU64) and insn.op in (isa.DIV, isa.MOD) and insn.off == 1:
        return [], Insn(insn.opcode, insn.dst, insn.src, 0, insn.imm), []
    return None


def _shift_unmasked(klass: int) -> Rewrite:
    """A shift by a register count the hardware does not mask: counts >= width give 0."""
    width = 64 if klass == isa.ALU64 else 32

    def rewrite(insn: Insn, _: str):
        if insn.klass == klass and insn.op in (isa.LSH, isa.RSH) and insn.source == isa.X and insn.dst != insn.src:
            # if (src & ~(width-1)) dst = 0 else dst op= src
            probe = Insn(isa.JMP | isa.JSET | isa.K, insn.src, 0, 2, -width & 0x7FFFFFFF)
            return [probe, insn, Insn(isa.JMP | isa.JA, 0, 0, 1, 0)], Insn(klass | isa.MOV | isa.K, insn.dst, 0, 0, 0), []
        return None
    return rewrite


def _div_by_zero_keeps_dst(insn: Insn, _: str):
    """Unsigned div by a zero register leaves dst unchanged (a guard that skips, not zeroes)."""
    if insn.klass in (isa.ALU, isa.ALU64) and insn.op == isa.DIV and insn.source == isa.X and not insn.off \
            and insn.dst != insn.src:
        return [Insn(_jump_class(insn) | isa.JEQ | isa.K, insn.src, 0, 1, 0)], insn, []
    return None


def _jump_class(insn: Insn) -> int:
    """JMP32 for a 32-bit ALU instruction (whose divisor is the low half), else JMP."""
    return isa.JMP32 if insn.klass == isa.ALU else isa.JMP


def _mod_by_zero_clears(insn: Insn, _: str):
    """Unsigned mod by a zero register gives 0 instead of leaving dst."""
    if insn.klass in (isa.ALU, isa.ALU64) and insn.op == isa.MOD and insn.source == isa.X and not insn.off \
            and insn.dst != insn.src:
        return [Insn(_jump_class(insn) | isa.JNE | isa.K, insn.src, 0, 2, 0),
                Insn(isa.ALU64 | isa.MOV | isa.K, insn.dst, 0, 0, 0), Insn(isa.JMP | isa.JA, 0, 0, 1, 0)], insn, []
    return None


def _mod32_no_zext_on_zero(insn: Insn, _: str):
    """32-bit mod by zero returns dst without clearing its upper half."""
    if insn.klass == isa.ALU and insn.op == isa.MOD and insn.source == isa.X and not insn.off and insn.dst != insn.src:
        return [Insn(isa.JMP32 | isa.JEQ | isa.K, insn.src, 0, 1, 0)], insn, []
    return None


def _sdiv_overflow_zero(insn: Insn, _: str):
    """Signed division by a -1 register gives 0 (an overflow guard returning the wrong value)."""
    if insn.klass in (isa.ALU, isa.ALU64) and insn.op == isa.DIV and insn.off == 1 and insn.source == isa.X \
            and insn.dst != insn.src:
        jmp = isa.JMP32 if insn.klass == isa.ALU else isa.JMP
        return [Insn(jmp | isa.JNE | isa.K, insn.src, 0, 2, -1),
                Insn(insn.klass | isa.XOR | isa.X, insn.dst, insn.dst, 0, 0),
                Insn(isa.JMP | isa.JA, 0, 0, 1, 0)], insn, []
    return None


def _endian_width(old_width: int, new_width: int) -> Rewrite:
    def rewrite(insn: Insn, _: str):
        if insn.klass in (isa.ALU, isa.ALU64) and insn.op == isa.END and insn.imm == old_width:
            return [], Insn(insn.opcode, insn.dst, insn.src, insn.off, new_width), []
        return None
    return rewrite


def _endian_direction(insn: Insn, _: str):
    """le and be swapped: the conversion does the wrong thing for the host order."""
    if insn.klass == isa.ALU and insn.op == isa.END:
        return [], Insn(isa.ALU | isa.END | (isa.TO_BE if insn.source == isa.TO_LE else isa.TO_LE),
                        insn.dst, 0, 0, insn.imm), []
    return None


def _fetch_returns_new(insn: Insn, _: str):
    """Atomic fetch-op puts the new value in src: the fetch is a plain op then a reload."""
    if insn.klass == isa.STX and insn.mode == isa.ATOMIC and insn.imm & isa.ATOMIC_FETCH \
            and insn.imm not in (isa.ATOMIC_XCHG, isa.ATOMIC_CMPXCHG) and insn.src != insn.dst:
        plain = Insn(insn.opcode, insn.dst, insn.src, insn.off, insn.imm & ~isa.ATOMIC_FETCH)
        return [], plain, [Insn(isa.LDX | isa.MEM | insn.size, insn.src, insn.dst, insn.off, 0)]
    return None


def _fetch_dropped(insn: Insn, _: str):
    """Atomic fetch-op that does not fetch: src keeps its value."""
    if insn.klass == isa.STX and insn.mode == isa.ATOMIC and insn.imm & isa.ATOMIC_FETCH \
            and insn.imm not in (isa.ATOMIC_XCHG, isa.ATOMIC_CMPXCHG):
        return [], Insn(insn.opcode, insn.dst, insn.src, insn.off, insn.imm & ~isa.ATOMIC_FETCH), []
    return None


def _helper_args_swapped(insn: Insn, _: str):
    """Helper call with r1 and r2 exchanged (argument registers mapped in the wrong order)."""
    if insn.klass == isa.JMP and insn.op == isa.CALL and insn.src == isa.CALL_HELPER:
        swap = [Insn(isa.ALU64 | isa.XOR | isa.X, 1, 2, 0, 0), Insn(isa.ALU64 | isa.XOR | isa.X, 2, 1, 0, 0),
                Insn(isa.ALU64 | isa.XOR | isa.X, 1, 2, 0, 0)]
        return swap, insn, []
    return None


def _callee_saved_clobbered(insn: Insn, _: str):
    """A helper call that does not preserve r6 (a callee-saved register mapped to a scratch one)."""
    if insn.klass == isa.JMP and insn.op == isa.CALL and insn.src == isa.CALL_HELPER:
        return [], insn, [Insn(isa.ALU64 | isa.MOV | isa.X, 6, 0, 0, 0)]
    return None


def _store_imm_width(insn: Insn, _: str):
    """stdw's immediate zero-extended instead of sign-extended."""
    if insn.klass == isa.ST and insn.mode == isa.MEM and insn.size == isa.DW and insn.imm < 0:
        return [], Insn(isa.ST | isa.MEM | isa.W, insn.dst, 0, insn.off, insn.imm), \
            [Insn(isa.ST | isa.MEM | isa.W, insn.dst, 0, insn.off + 4, 0)]
    return None


def _branch_offset_plus_one(insn: Insn, _: str):
    """A backward conditional branch landing one instruction late."""
    if insn.klass in (isa.JMP, isa.JMP32) and insn.op not in (isa.JA, isa.CALL, isa.EXIT) and insn.off < -1:
        return [], Insn(insn.opcode, insn.dst, insn.src, insn.off + 1, insn.imm), []
    return None


def _neg32_as_neg64(insn: Insn, _: str):
    if insn.klass == isa.ALU and insn.op == isa.NEG:
        return [], Insn(isa.ALU64 | isa.NEG, insn.dst, 0, 0, 0), []
    return None


def _mov32_imm_sign_extends(insn: Insn, _: str):
    """mov32 of a negative immediate sign-extends into 64 bits (a 64-bit move was emitted)."""
    if insn.klass == isa.ALU and insn.op == isa.MOV and insn.source == isa.K and insn.imm < 0:
        return [], Insn(isa.ALU64 | isa.MOV | isa.K, insn.dst, 0, 0, insn.imm), []
    return None


def _ld_ind_ignores_register(insn: Insn, _: str):
    if insn.klass == isa.LD and insn.mode == isa.IND:
        return [], Insn(isa.LD | isa.ABS | insn.size, 0, 0, 0, insn.imm), []
    return None


CATALOGUE: list[Mutant] = [
    Mutant("add32-no-zext", "missing zero-extension", "add32 computed in 64 bits", _widen_alu32(isa.ADD)),
    Mutant("sub32-no-zext", "missing zero-extension", "sub32 computed in 64 bits", _widen_alu32(isa.SUB)),
    Mutant("mul32-no-zext", "missing zero-extension", "mul32 computed in 64 bits", _widen_alu32(isa.MUL)),
    Mutant("or32-no-zext", "missing zero-extension", "or32 computed in 64 bits", _widen_alu32(isa.OR)),
    Mutant("and32-no-zext", "missing zero-extension", "and32 computed in 64 bits", _widen_alu32(isa.AND)),
    Mutant("xor32-no-zext", "missing zero-extension", "xor32 computed in 64 bits", _widen_alu32(isa.XOR)),
    Mutant("lsh32-as-lsh64", "missing zero-extension", "lsh32 computed in 64 bits", _widen_alu32(isa.LSH)),
    Mutant("rsh32-as-rsh64", "ALU32 reading the upper half", "rsh32 shifts the 64-bit register",
           _widen_alu32(isa.RSH)),
    Mutant("arsh32-as-arsh64", "shift edge", "arsh32 shifts the 64-bit register", _widen_alu32(isa.ARSH)),
    Mutant("mov32-moves-64", "32-bit move moving 64 bits", "mov32 copies all 64 bits", _widen_alu32(isa.MOV)),
    Mutant("div32-as-div64", "missing zero-extension", "div32 divides the 64-bit registers",
           _widen_alu32(isa.DIV)),
    Mutant("mod32-as-mod64", "missing zero-extension", "mod32 on the 64-bit registers", _widen_alu32(isa.MOD)),
    Mutant("neg32-as-neg64", "missing zero-extension", "neg32 negates 64 bits", _neg32_as_neg64),
    Mutant("mov32-imm-sign-extends", "immediate sign/width edge",
           "mov32 of a negative immediate fills the upper half", _mov32_imm_sign_extends),
    Mutant("jmp32-reads-upper-half", "JMP32 reading the upper half", "JMP32 compares 64 bits", _jmp32_as_jmp64),
    Mutant("jgt-as-jge", "wrong branch condition", "jgt taken on equality", _swap_op(isa.JMP, isa.JGT, isa.JGE)),
    Mutant("jlt-as-jle", "wrong branch condition", "jlt taken on equality", _swap_op(isa.JMP, isa.JLT, isa.JLE)),
    Mutant("jsgt-as-jgt", "wrong branch condition", "signed > compared unsigned",
           _swap_op(isa.JMP, isa.JSGT, isa.JGT)),
    Mutant("jslt-as-jlt", "wrong branch condition", "signed < compared unsigned",
           _swap_op(isa.JMP, isa.JSLT, isa.JLT)),
    Mutant("jsge32-as-jge32", "wrong branch condition", "32-bit signed >= compared unsigned",
           _swap_op(isa.JMP32, isa.JSGE, isa.JGE)),
    Mutant("jset-as-jne", "wrong branch condition", "jset tests inequality", _swap_op(isa.JMP, isa.JSET, isa.JNE)),
    Mutant("backward-branch-off-by-one", "wrong branch offset",
           "backward conditional branches land one instruction late", _branch_offset_plus_one),
    Mutant("arsh-as-rsh", "shift edge", "arsh shifts in zeros", _swap_op(isa.ALU64, isa.ARSH, isa.RSH)),
    Mutant("lsh-unmasked", "shift edge", "64-bit shifts by a register count >= 64 give 0",
           _shift_unmasked(isa.ALU64)),
    Mutant("lsh32-unmasked", "shift edge", "32-bit shifts by a register count >= 32 give 0",
           _shift_unmasked(isa.ALU)),
    Mutant("div-by-zero-keeps-dst", "div/mod edge", "div by a zero register leaves dst", _div_by_zero_keeps_dst),
    Mutant("mod-by-zero-clears", "div/mod edge", "mod by a zero register gives 0", _mod_by_zero_clears),
    Mutant("mod32-by-zero-no-zext", "div/mod edge", "mod32 by zero keeps dst's upper half",
           _mod32_no_zext_on_zero),
    Mutant("sdiv-overflow-zero", "div/mod edge", "sdiv by a -1 register gives 0 (INT_MIN / -1 guard)",
           _sdiv_overflow_zero),
    Mutant("signed-divmod-as-unsigned", "div/mod edge", "sdiv/smod computed unsigned", _signed_as_unsigned),
    Mutant("bswap16-as-bswap32", "byte-swap width", "16-bit swaps swap 32 bits", _endian_width(16, 32)),
    Mutant("swap32-as-swap64", "byte-swap width", "32-bit swaps swap 64 bits", _endian_width(32, 64)),
    Mutant("le-be-confused", "byte-swap width", "le and be exchanged", _endian_direction),
    Mutant("stxw-as-stxdw", "wrong store width", "4-byte register stores write 8 bytes",
           _change_size(isa.MEM, isa.STX, isa.W, isa.DW)),
    Mutant("stxb-as-stxh", "wrong store width", "1-byte register stores write 2 bytes",
           _change_size(isa.MEM, isa.STX, isa.B, isa.H)),
    Mutant("sth-as-stw", "wrong store width", "2-byte immediate stores write 4 bytes",
           _change_size(isa.MEM, isa.ST, isa.H, isa.W)),
    Mutant("ldxh-as-ldxb", "wrong load width", "2-byte loads read 1 byte",
           _change_size(isa.MEM, isa.LDX, isa.H, isa.B)),
    Mutant("stdw-imm-zero-extended", "immediate sign/width edge", "stdw's negative immediate zero-extended",
           _store_imm_width),
    Mutant("sign-load-zero-extends", "immediate sign/width edge", "ldxs* zero-extend", _sign_load_as_zero),
    Mutant("movsx-as-mov", "immediate sign/width edge", "movsx moves without sign extension", _movsx_as_mov),
    Mutant("atomic-fetch-returns-new", "atomic fetch returning the new value",
           "fetch puts the new value in src", _fetch_returns_new),
    Mutant("atomic-fetch-dropped", "atomic fetch returning the new value", "fetch-op leaves src unchanged",
           _fetch_dropped),
    Mutant("helper-args-swapped", "register aliasing with a temporary", "helper arguments r1 and r2 swapped",
           _helper_args_swapped),
    Mutant("helper-clobbers-r6", "register aliasing with a temporary", "r6 not preserved across helper calls",
           _callee_saved_clobbered),
    Mutant("ld-ind-ignores-register", "wrong operand", "LD_IND loads as LD_ABS", _ld_ind_ignores_register),
]


def mutated_backend(backend, mutant: Mutant):
    """A copy of ``backend`` whose translation has the mutant's bug (own cache, same engine)."""
    clone = copy.copy(backend)
    clone.clear_cache()  # its own cache: the original's translations stay unmutated
    original = backend.translate

    def translate(program: Program):
        return original(apply(program, mutant.rewrite, backend.byte_order))

    clone.translate = translate
    return clone


def affected(program: Program, mutant: Mutant, byte_order: str) -> bool:
    return apply(program, mutant.rewrite, byte_order) != program


def catalogue(arches: Iterable[str]) -> list[tuple[Mutant, str]]:
    return [(mutant, arch) for mutant in CATALOGUE for arch in arches if mutant.applies_to(arch)]


# --- running the catalogue -------------------------------------------------------

# Mutants that cannot be killed on some architecture, and why (shown in the report).
EXPLAINED: dict[tuple[str, str], str] = {}


@dataclass
class MutantResult:
    mutant: str
    arch: str
    bug_class: str
    description: str
    killed_by: str | None
    affected_cases: int
    cases_run: int
    explanation: str = ""

    @property
    def killed(self) -> bool:
        return self.killed_by is not None


def run_mutant(mutant: Mutant, arch: str, case_paths: list[str]) -> MutantResult:
    """Run the cases the mutant changes, in order, until one fails."""
    import arches
    from harness.running.conformance import ERROR, FAIL, load_checked, run_item

    backend = arches.get(arch)
    clone = mutated_backend(backend, mutant)
    touched = run = 0
    for path in case_paths:
        loaded = load_checked(path)
        if loaded.runnable is None or not affected(loaded.runnable, mutant, backend.byte_order):
            continue
        touched += 1
        result = run_item(path, arch, backend=clone)
        run += 1
        if result.status in (FAIL, ERROR):
            return MutantResult(mutant.name, arch, mutant.bug_class, mutant.description, path, touched, run)
    explanation = EXPLAINED.get((mutant.name, arch), "" if touched else "no corpus case uses the instruction")
    return MutantResult(mutant.name, arch, mutant.bug_class, mutant.description, None, touched, run, explanation)


def _job(job: tuple[str, str, list[str]]) -> MutantResult:
    name, arch, paths = job
    mutant = next(m for m in CATALOGUE if m.name == name)
    return run_mutant(mutant, arch, paths)


def run_catalogue(arch_names: list[str], case_paths: list[str], workers: int = 1,
                  progress: Callable[[MutantResult], None] | None = None) -> list[MutantResult]:
    """Every applicable (mutant, architecture) pair; results in catalogue order."""
    import multiprocessing

    jobs = [(mutant.name, arch, case_paths) for mutant, arch in catalogue(arch_names)]
    results: list[MutantResult] = []
    if workers <= 1:
        for job in jobs:
            results.append(_job(job))
            if progress:
                progress(results[-1])
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for result in pool.imap_unordered(_job, jobs):
                results.append(result)
                if progress:
                    progress(result)
    order = {(name, arch): index for index, (name, arch, _) in enumerate(jobs)}
    return sorted(results, key=lambda r: order[(r.mutant, r.arch)])


def score_table(results: list[MutantResult], verbose: bool = False) -> str:
    """Killed / total per architecture, then every survivor with its explanation.

    ``verbose`` first lists every (mutant, architecture) with the case that killed it.
    """
    lines = []
    if verbose:
        for r in results:
            verdict = f"killed by {r.killed_by}" if r.killed else "SURVIVED"
            lines.append(f"{r.mutant:<28} {r.arch:<8} {verdict}")
        lines.append("")
    lines.append(f"{'arch':<10}{'killed':>8}{'total':>8}{'score':>9}")
    arches = sorted({r.arch for r in results}, key=[r.arch for r in results].index)
    for arch in arches:
        mine = [r for r in results if r.arch == arch]
        killed = sum(r.killed for r in mine)
        lines.append(f"{arch:<10}{killed:>8}{len(mine):>8}{100 * killed / len(mine):>8.1f}%")
    total = sum(r.killed for r in results)
    lines.append(f"{'all':<10}{total:>8}{len(results):>8}{100 * total / max(1, len(results)):>8.1f}%")
    survivors = [r for r in results if not r.killed]
    if survivors:
        lines += ["", "survivors:"]
        for r in survivors:
            why = r.explanation or f"{r.affected_cases} case(s) use it, none fails"
            lines.append(f"  {r.arch:<8} {r.mutant:<28} {r.description}: {why}")
    return "\n".join(lines)
