"""Is a surviving native mutant equivalent? Run both versions of the form side by side.

For every distinct instance of the mutated form in the corpus cases the mutant ran
(its registers, immediate and offset as the cases write them, up to
:data:`MAX_INSTANCES`), a *probe* program loads every register r0-r9 from the
input memory, executes that one instruction (a jump skips one store, a memory
access goes to the input memory or a stack window filled from it), stores every
register to the stack and exits. The original and the mutated backend translate
the probe, and both run on the same battery of inputs: every pair of
:data:`EDGE` values for the instruction's register operands (every shift count
0-127 for shifts), plus random values with random upper halves, with random
memory. The outcomes are compared in full (kind, r0, memory, stack, faults).

A difference is a witness: the mutant is not equivalent and the corpus needs a
case that exercises those operands. Agreement on every input is the evidence the
report gives for an equivalent mutant, stated with its numbers: a bounded check
(not a proof) over the instruction's inputs, exhaustive in the shift count.
"""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from typing import Any

from harness import isa, layout
from harness.isa import Insn, Program
from harness.oracle.outcome import first_difference
from harness.oracle.validator import ValidationError, validate

MAX_INSTANCES = 6
RANDOM_VECTORS = 160
PROBE_BUDGET = 400
MEMORY_SIZE = 0x10000  # the whole input region: offsets up to +-0x7fff around BASE_OFFSET
BASE_OFFSET = 0x8000  # a memory operand's base register points here in the input memory
STAGE = 0x100  # bytes copied into the stack window of an r10-based access come from here
EDGE = [0, 1, 2, 7, 0x1F, 0x20, 0x3F, 0x40, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF,
        0x80000000, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, (1 << 64) - 1,
        0xFFFFFFFF80000000, 0x0123456789ABCDEF]
PACKET_OFFSETS = [0, 1, 2, 3, 4, 14, 0x7F, 0x80, 0xFFF, 0x1000, 0x7FFF, 0xFFFC, 0xFFFE, 0xFFFF, 0x10000,
                  (1 << 64) - 1, (1 << 64) - 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
M64 = (1 << 64) - 1


@dataclass
class Verdict:
    equivalent: bool
    evidence: str


def _mov_reg(dst: int, src: int) -> Insn:
    return Insn(isa.ALU64 | isa.MOV | isa.X, dst, src, 0, 0)


def _load(dst: int, base: int, off: int) -> Insn:
    return Insn(isa.LDX | isa.MEM | isa.DW, dst, base, off, 0)


def _store(base: int, off: int, src: int) -> Insn:
    return Insn(isa.STX | isa.MEM | isa.DW, base, src, off, 0)


def probe_program(insn: Insn, lddw_value: int | None = None) -> tuple[Program, set[int]] | None:
    """The probe for one instance, and the registers whose values are its inputs (None: no probe)."""
    klass, mode = insn.klass, insn.mode
    memory = klass in (isa.LDX, isa.ST, isa.STX)
    base = insn.src if klass == isa.LDX else insn.dst if memory else None
    helper = klass == isa.JMP and insn.op == isa.CALL and insn.src == isa.CALL_HELPER
    local = klass == isa.JMP and insn.op == isa.CALL and insn.src == isa.CALL_LOCAL
    packet = klass == isa.LD and mode in (isa.ABS, isa.IND)
    if helper and insn.imm not in (100, 102, 104):  # pointer or map arguments: no generic probe
        return None
    body: list[Insn] = []
    if memory and base == 10:  # fill the stack window the access touches from the input memory
        start = (insn.off // 8) * 8
        for slot in range(start - 8, start + 16, 8):
            if -layout.MAX_STACK <= slot < 0:
                body += [_load(0, 1, STAGE + slot + layout.MAX_STACK), _store(10, slot, 0)]
    body += [_load(register, 1, 8 * register) for register in (0, 2, 3, 4, 5, 6, 7, 8, 9)]
    if memory and base not in (10, 1):
        body += [_mov_reg(base, 1), Insn(isa.ALU64 | isa.ADD | isa.K, base, 0, 0, BASE_OFFSET)]
    if memory and base == 1:
        body.append(Insn(isa.ALU64 | isa.ADD | isa.K, 1, 0, 0, BASE_OFFSET))
    else:
        body.append(_load(1, 1, 8))
    scratch_after = helper or local or packet
    jumps = klass in (isa.JMP, isa.JMP32) and insn.op not in (isa.CALL, isa.EXIT)
    call_at = len(body)
    if insn.opcode == isa.LDDW:
        body += list(isa.lddw_pair(insn.dst, lddw_value or 0))
    elif jumps:
        if klass == isa.JMP32 and insn.op == isa.JA:
            body.append(Insn(insn.opcode, insn.dst, insn.src, insn.off, 1))
        else:
            body.append(Insn(insn.opcode, insn.dst, insn.src, 1, insn.imm))
        body.append(Insn(isa.ST | isa.MEM | isa.DW, 10, 0, -96, 0x55))  # skipped when the jump is taken
    elif insn.op == isa.EXIT and klass == isa.JMP:
        pass
    else:
        body.append(insn)
    kept = [0, 6, 7, 8, 9] if scratch_after else list(range(10))
    body += [_store(10, -8 * (register + 1), register) for register in kept]
    body.append(Insn(isa.JMP | isa.EXIT))
    if local:
        body[call_at] = Insn(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, len(body) - call_at - 1)
        body += [_mov_reg(0, 1)] + [Insn(isa.ALU64 | isa.XOR | isa.X, 0, r, 0, 0) for r in (2, 3, 4, 5)]
        body += [_store(10, -8, 0), Insn(isa.JMP | isa.EXIT)]
    program = Program(tuple(body))
    try:
        validate(program)
    except ValidationError:
        return None
    inputs = {insn.dst, insn.src} if klass in (isa.ALU, isa.ALU64, isa.JMP, isa.JMP32) else {insn.dst, insn.src}
    if helper or local:
        inputs = {1, 2, 3, 4, 5}
    if packet:
        inputs = {insn.src} if mode == isa.IND else set()
    if klass in (isa.ALU, isa.ALU64) and insn.source == isa.K and insn.op != isa.MOV:
        inputs = {insn.dst}
    return program, inputs - {10} - ({base} if memory else set())


def vectors(insn: Insn, inputs: set[int], rng: random.Random) -> list[bytes]:
    """Input memories: registers r0-r9 at 8*n (r1 at 8 too), random bytes elsewhere."""
    shifts = insn.klass in (isa.ALU, isa.ALU64) and insn.op in (isa.LSH, isa.RSH, isa.ARSH)
    packet = insn.klass == isa.LD
    edge = PACKET_OFFSETS if packet else EDGE
    chosen = sorted(inputs)
    combos: list[dict[int, int]] = []
    if len(chosen) == 1:
        combos = [{chosen[0]: value} for value in edge]
    elif len(chosen) >= 2:
        first, second = chosen[0], chosen[1]
        combos = [{first: a, second: b} for a in edge for b in edge]
    if shifts and insn.source == isa.X:
        combos += [{insn.src: count | garbage, insn.dst: value} for count in range(128)
                   for garbage, value in ((0, 0x8000000180000001), (0xA5A5A5A5_00000000, M64))]
    combos += [{register: rng.choice([rng.getrandbits(64), rng.getrandbits(32), rng.getrandbits(8),
                                      rng.getrandbits(32) << 32 | rng.choice(edge) & 0xFFFFFFFF])
                for register in chosen} for _ in range(RANDOM_VECTORS)]
    if not combos:
        combos = [{} for _ in range(RANDOM_VECTORS // 4)]
    memories = []
    for combo in combos:
        data = bytearray(rng.getrandbits(8 * MEMORY_SIZE).to_bytes(MEMORY_SIZE, "little"))
        for register in range(10):
            value = combo.get(register, rng.getrandbits(64))
            struct.pack_into("<Q", data, 8 * register if register != 1 else 8, value & M64)
        for register, value in combo.items():
            if register == 1:
                struct.pack_into("<Q", data, 8, value & M64)
        memories.append(bytes(data))
    return memories


def check(mutant: Any, programs: list[Program], mutated_backend: Any, seed: int = 0) -> Verdict:
    """Compare the original and the mutated code of the mutant's form on probes (see the module docstring)."""
    import arches
    from harness.running.emulator import discard_engine, engine_for

    backend = arches.get(mutant.arch)
    instances: dict[tuple, tuple[Insn, int | None]] = {}
    for program in programs:
        for index in program.instruction_starts():
            insn = program.insns[index]
            if isa.opcode_key(insn) == mutant.form:
                value = program.lddw_value(index) if insn.opcode == isa.LDDW else None
                key = (insn.dst, insn.src, insn.off if insn.klass not in (isa.JMP, isa.JMP32) else 0,
                       insn.imm if insn.klass != isa.JMP32 or insn.op != isa.JA else 0, value)
                instances.setdefault(key, (insn, value))
    rng = random.Random(f"{seed}:{mutant.ident}")
    total = probes = built_count = 0
    order = backend.byte_order
    for insn, value in instances.values():
        built = probe_program(insn, value)
        if built is None:
            continue
        program, inputs = built
        built_count += 1
        if probes >= MAX_INSTANCES:
            break
        try:
            original, mutated = backend.translate(program), mutated_backend.translate(program)
        except Exception as error:  # noqa: BLE001 - a probe the mutant cannot build proves nothing
            return Verdict(False, f"no verdict: the probe for `{_text(insn)}` does not build ({error})")
        if original.code == mutated.code:
            continue
        probes += 1
        memories = vectors(insn, inputs, rng)
        engine = engine_for(backend)
        try:
            before = [engine.run(original, memory, PROBE_BUDGET) for memory in memories]
            after = [engine.run(mutated, memory, PROBE_BUDGET) for memory in memories]
        except Exception:
            discard_engine(backend)
            raise
        for memory, want, got in zip(memories, before, after):
            total += 1
            difference = first_difference(want, got, base_mem=layout.MEM_BASE, base_stack=layout.STACK_BASE)
            if difference is not None:
                shown = ", ".join(f"r{r}={struct.unpack_from('<Q', memory, 8 * r if r != 1 else 8)[0]:#x}"
                                  for r in sorted(inputs))
                where = f" at {difference.offset:#x}" if difference.offset is not None else ""
                return Verdict(False, f"NOT equivalent: `{_text(insn)}` with {shown or 'its memory'} ({order} "
                                      f"endian): {difference.what}{where} differs: original {difference.expected}, "
                                      f"mutated {difference.actual}")
    if not built_count:
        return Verdict(False, "no verdict: no probe exists for this form (calls, exits, pointer helpers); "
                              "the survivor needs a corpus case or an argument")
    if not probes:
        return Verdict(False, f"no verdict: the mutation changes none of the {built_count} probe(s) built from "
                              f"the corpus's instances, only the code of whole cases; it needs a corpus case")
    return Verdict(True, f"equivalent on probes: original and mutated code agree on all {total} input "
                         f"vectors over {probes} operand set(s) from the corpus (edge-value pairs, random "
                         f"values, every shift count 0-127)")


def _text(insn: Insn) -> str:
    from harness.cases.asm import disassemble_text

    slots = (insn, Insn(0)) if insn.opcode == isa.LDDW else (insn,)
    return disassemble_text(Program(slots)).splitlines()[0]
