"""Long eBPF programs of any size, for measuring how the harness scales (``harness bench``).

A program is a run of *checks* shaped like the kernel's test_bpf fill helpers
(``__bpf_fill_pattern``): load an operand, apply one ALU operation, load the value
the generator's own arithmetic expects, and compare; a wrong value branches to a
*failure station* that ends the program returning 0. A station (``ja +2; mov r0, 0;
exit``, the ``ja`` skipping it in the normal flow) stands every ``STATION_EVERY``
slots, and every check branches forward to the next one: up to 16,000 slots away,
tens or hundreds of KiB of native code, so every backend's far-branch forms and
branch relaxation are exercised in proportion to the program's size. Every sixth
check goes through the stack (``stxdw``/``ldxdw``). The first slot is a ``gotol`` to
the last, a ``gotol`` back to the second: two jumps across the whole program, so a
target whose branches cannot reach across a program this long fails here too. The
program returns the number of checks that passed, which the generator counts itself:
never the interpreter.

Each check takes 7 slots (9 through the stack) and executes 5 (7) instructions: a
program of N slots runs about 0.7 N instructions, inside the default budget.
"""
from __future__ import annotations

import random
from pathlib import Path

from harness import isa
from harness.isa import Insn, Program, lddw_pair

U64 = (1 << 64) - 1
U32 = 0xFFFF_FFFF
STATION_EVERY = 16_000  # slots between failure stations (a 16-bit jump offset reaches 32,767)
# (operation, 64-bit?) pairs the checks cycle through, with the generator's own arithmetic
FILLER = Insn(isa.ALU64 | isa.MOV | isa.K, 9, 0, 0, 0)  # mov r9, 0: pads a segment to its station
OPERATIONS = [(op, wide) for wide in (True, False)
              for op in (isa.ADD, isa.SUB, isa.MUL, isa.OR, isa.AND, isa.XOR, isa.LSH, isa.RSH, isa.ARSH)]


def _apply(op: int, wide: bool, left: int, right: int) -> int:
    """``left op right`` as RFC 9669 defines it for ALU64 (``wide``) or ALU (32-bit, zero-extended)."""
    bits = 64 if wide else 32
    mask = (1 << bits) - 1
    left, right = left & mask, right & mask
    if op == isa.ADD:
        return (left + right) & mask
    if op == isa.SUB:
        return (left - right) & mask
    if op == isa.MUL:
        return (left * right) & mask
    if op == isa.OR:
        return left | right
    if op == isa.AND:
        return left & right
    if op == isa.XOR:
        return left ^ right
    shift = right & (bits - 1)
    if op == isa.LSH:
        return (left << shift) & mask
    if op == isa.RSH:
        return left >> shift
    signed = left - (1 << bits) if left >> (bits - 1) else left  # ARSH
    return (signed >> shift) & mask


def _check(rng: random.Random, number: int, to_station: int, via_stack: bool) -> list[Insn]:
    """One check: r1 = operand; r1 op= imm; r4 = expected; (through the stack); if r1 != r4 fail; r0 += 1.

    ``to_station`` is the slot distance from the check's first slot to its failure station.
    """
    op, wide = OPERATIONS[number % len(OPERATIONS)]
    operand = rng.getrandbits(64)
    imm = isa.to_s32(rng.getrandbits(32))
    if op in (isa.LSH, isa.RSH, isa.ARSH):
        imm &= 63 if wide else 31
    # ALU64 sign-extends the immediate to 64 bits, ALU cuts it to 32; a 32-bit ALU result is
    # zero-extended, and so is the 32-bit view of the operand it starts from
    expected = _apply(op, wide, operand, imm & U64)
    klass = isa.ALU64 if wide else isa.ALU
    slots = [*lddw_pair(1, operand), Insn(klass | op | isa.K, 1, 0, 0, imm), *lddw_pair(4, expected)]
    if via_stack:
        slots += [Insn(isa.STX | isa.MEM | isa.DW, 10, 1, -8, 0), Insn(isa.LDX | isa.MEM | isa.DW, 1, 10, -8, 0)]
    jump_at = len(slots)
    slots.append(Insn(isa.JMP | isa.JNE | isa.X, 1, 4, to_station - jump_at - 1, 0))
    slots.append(Insn(isa.ALU64 | isa.ADD | isa.K, 0, 0, 0, 1))
    return slots


def generate(slots: int, seed: int = 1) -> tuple[Program, int]:
    """A program of exactly ``slots`` slots (at least 16) and the r0 it returns (its count of checks)."""
    if slots < 16:
        raise ValueError("a long program has at least 16 slots")
    rng = random.Random(seed)
    station = [Insn(isa.JMP | isa.JA, 0, 0, 2, 0), Insn(isa.ALU64 | isa.MOV | isa.K, 0, 0, 0, 0),
               Insn(isa.JMP | isa.EXIT)]
    ending = [Insn(isa.ALU64 | isa.MOV | isa.K, 0, 0, 0, 0), Insn(isa.JMP | isa.EXIT)]  # the last station
    # slot 0 jumps to the last slot, which jumps back to slot 1 (gotol: JMP32 | JA, offset in imm)
    body: list[Insn] = [Insn(isa.JMP32 | isa.JA, 0, 0, 0, slots - 2), Insn(isa.ALU64 | isa.MOV | isa.K, 0, 0, 0, 0)]
    slots -= 1  # the last slot is the jump back, after everything below
    checks = 0
    segment_end = min(STATION_EVERY, slots - len(ending) - 1)  # where this segment's station starts
    while True:
        room = slots - len(ending) - 1 - len(body)  # the final `exit` comes before the ending
        via_stack = checks % 6 == 5
        size = 9 if via_stack else 7
        if room < size:
            break
        last_segment = segment_end >= slots - len(ending) - 1
        if not last_segment and len(body) + size > segment_end:
            body += [FILLER] * (segment_end - len(body)) + station  # the station starts at segment_end
            segment_end = min(len(body) + STATION_EVERY, slots - len(ending) - 1)
            continue
        # the failure station: the next segment's, or the ending's `mov r0, 0` after the final exit
        station_at = segment_end + 1 if not last_segment else slots - len(ending)
        body += _check(rng, checks, station_at - len(body), via_stack)
        checks += 1
    body += [FILLER] * (slots - len(ending) - 1 - len(body))
    body.append(Insn(isa.JMP | isa.EXIT))
    back = Insn(isa.JMP32 | isa.JA, 0, 0, 0, -slots)  # from the last slot to slot 1
    program = Program(tuple(body + ending + [back]))
    assert len(program) == slots + 1
    return program, checks


def write_case(folder: Path, slots: int, seed: int = 1) -> Path:
    """``folder/long_N.data`` with its program in ``long_N.bin`` beside it; returns the .data path."""
    program, checks = generate(slots, seed)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"long_{slots}"
    (folder / f"{stem}.bin").write_bytes(program.encode())
    path = folder / f"{stem}.data"
    path.write_text(f"# A generated program of {slots} slots (harness/tools/long_program.py, seed {seed}).\n"
                    f"-- raw @ {stem}.bin\n-- result\n{checks:#x}\n-- description\n"
                    f"{checks} checks of an ALU result against the generator's own arithmetic, failure "
                    f"stations every {STATION_EVERY} slots.\n")
    return path
