"""ALU and ALU64 on arm32: every 64-bit operation on a pair of 32-bit words.

Shapes after the kernel's arch/arm/net/bpf_jit_32.c: add/sub as carry and borrow
chains (adds/adc, subs/sbc, rsbs/rsc for neg), multiply as two ``mul`` for the
cross terms plus ``umull`` for the low words, shifts by a register with the
"shift by a negative count gives 0" idiom of ARM register shifts (they use the
count's low byte: 32-255 shift every bit out). Unlike the kernel (which trusts the
verifier) the count is masked to 6 or 5 bits first, as the ISA says. Division
and modulo call the subroutines of :mod:`arches.arm32.runtime`.

Each builder returns assembly lines; a 32-bit result always clears the high word.
"""
from __future__ import annotations

from typing import Callable

from arches.arm32 import runtime
from arches.arm32.registers import (MASK32, TMP1, TMP2, Pair, fetch64, fetch_low, immediate_operand,
                                    move_immediate, put32, put64, working_low, working_pair)
from harness import isa
from harness.isa import Insn

_ARITH = {isa.ADD: ("adds", "adc"), isa.SUB: ("subs", "sbc"), isa.OR: ("orr", "orr"),
          isa.AND: ("and", "and"), isa.XOR: ("eor", "eor")}
_ALU32 = {isa.ADD: "add", isa.SUB: "sub", isa.OR: "orr", isa.AND: "and", isa.XOR: "eor", isa.MUL: "mul"}
_SHIFT = {isa.LSH: "lsl", isa.RSH: "lsr", isa.ARSH: "asr"}


def immediate_pair(value: int, into: Pair) -> list[str]:
    """``into`` = the sign-extended 32-bit immediate ``value`` as a (low, high) pair."""
    return move_immediate(into[0], value) + [f"mvn {into[1]}, #0" if value < 0 else f"mov {into[1]}, #0"]


def source_pair(insn: Insn) -> tuple[list[str], Pair]:
    """The 64-bit source operand (src, or the sign-extended immediate) in ARM registers."""
    if insn.source == isa.X:
        return fetch64(insn.src, TMP2)
    return immediate_pair(insn.imm, TMP2), TMP2


def source_low(insn: Insn, into: str = TMP2[0]) -> tuple[list[str], str]:
    """The 32-bit source operand (src's low word, or the immediate) in an ARM register."""
    if insn.source == isa.X:
        return fetch_low(insn.src, into)
    return move_immediate(into, insn.imm), into


def build_alu(insn: Insn, index: int, use_subroutine: Callable[[str], None]) -> list[str] | None:
    """ALU/ALU64: dst = dst op src/imm (32-bit forms zero-extend)."""
    is64, op = insn.klass == isa.ALU64, insn.op
    if op == isa.MOV:
        return move(insn, is64)
    if op == isa.END:
        return swap(insn)
    if op in (isa.DIV, isa.MOD):
        return divide(insn, is64, use_subroutine)
    if op in _SHIFT:
        return shift64(insn) if is64 else shift32(insn)
    if not is64:
        return alu32(insn)
    if op == isa.NEG:
        # NEG: dst = 0 - dst, the borrow carried into the high word
        lines, (low, high) = fetch64(insn.dst, TMP1)
        return lines + [f"rsbs {low}, {low}, #0", f"rsc {high}, {high}, #0"] + put64(insn.dst, (low, high))
    if op == isa.MUL:
        return multiply64(insn)
    if op in _ARITH:
        return arith64(insn)
    return None


def alu32(insn: Insn) -> list[str] | None:
    """32-bit add/sub/or/and/xor/mul/neg on the low words; the high word becomes 0."""
    lines, low = fetch_low(insn.dst, TMP1[0])
    if insn.op == isa.NEG:
        return lines + [f"rsb {low}, {low}, #0"] + put32(insn.dst, low)
    if insn.op not in _ALU32:
        return None
    if insn.source == isa.K and insn.op != isa.MUL:
        setup, operand = immediate_operand(insn.imm, TMP2[0])
    else:
        setup, operand = source_low(insn)
    return lines + setup + [f"{_ALU32[insn.op]} {low}, {low}, {operand}"] + put32(insn.dst, low)


def arith64(insn: Insn) -> list[str]:
    """64-bit add/sub (carry chain) and or/and/xor (word by word)."""
    lines, (low, high) = fetch64(insn.dst, TMP1)
    first, second = _ARITH[insn.op]
    if insn.source == isa.X:
        setup, (src_low, src_high) = fetch64(insn.src, TMP2)
        lines += setup + [f"{first} {low}, {low}, {src_low}", f"{second} {high}, {high}, {src_high}"]
        return lines + put64(insn.dst, (low, high))
    # K: the immediate's high word is 0 or all ones (sign extension)
    setup, operand = immediate_operand(insn.imm, TMP2[0])
    lines += setup + [f"{first} {low}, {low}, {operand}"]
    negative = insn.imm < 0
    if insn.op == isa.ADD:  # + 0xffffffff + carry is - 1 + carry: sbc #0 (keystone rejects adc #-1)
        lines.append(f"sbc {high}, {high}, #0" if negative else f"adc {high}, {high}, #0")
    elif insn.op == isa.SUB:  # - 0xffffffff - borrow is + carry
        lines.append(f"adc {high}, {high}, #0" if negative else f"sbc {high}, {high}, #0")
    elif insn.op == isa.OR and negative:
        lines.append(f"mvn {high}, #0")
    elif insn.op == isa.AND and not negative:
        lines.append(f"mov {high}, #0")
    elif insn.op == isa.XOR and negative:
        lines.append(f"mvn {high}, {high}")
    return lines + put64(insn.dst, (low, high))


def multiply64(insn: Insn) -> list[str]:
    """dst *= src: low x low with umull, plus both cross products into the high word."""
    lines, (low, high) = fetch64(insn.dst, TMP1)
    setup, (src_low, src_high) = source_pair(insn)
    return lines + setup + [
        f"mul ip, {low}, {src_high}",
        f"mul r10, {high}, {src_low}",
        "add r10, r10, ip",
        f"umull ip, {high}, {low}, {src_low}",
        f"add {high}, {high}, r10",
        f"mov {low}, ip",
    ] + put64(insn.dst, (low, high))


def move(insn: Insn, is64: bool) -> list[str]:
    """MOV (and MOVSX): dst = src or imm; the 32-bit form zero-extends."""
    if insn.source == isa.K:
        high = MASK32 if is64 and insn.imm < 0 else 0  # K is sign-extended in ALU64 only
        pair = working_pair(insn.dst, TMP1)
        return move_immediate(pair[0], insn.imm) + move_immediate(pair[1], high) + put64(insn.dst, pair)
    if insn.off:  # MOVSX: dst = (s8/s16/s32) src
        lines, src = fetch_low(insn.src, TMP2[0])
        low = working_low(insn.dst, TMP1[0])
        extend = {8: f"sxtb {low}, {src}", 16: f"sxth {low}, {src}", 32: f"mov {low}, {src}"}[insn.off]
        if not is64:
            return lines + [extend] + put32(insn.dst, low)
        pair = working_pair(insn.dst, TMP1)
        return lines + [extend, f"asr {pair[1]}, {low}, #31"] + put64(insn.dst, pair)
    if not is64:
        lines, src = fetch_low(insn.src, TMP1[0])
        return lines + put32(insn.dst, src)
    if insn.src == insn.dst:
        return []
    lines, pair = fetch64(insn.src, TMP1)
    return lines + put64(insn.dst, pair)


def shift32(insn: Insn) -> list[str]:
    """32-bit shifts: the count masked to 5 bits; the high word becomes 0."""
    lines, low = fetch_low(insn.dst, TMP1[0])
    mnemonic = _SHIFT[insn.op]
    if insn.source == isa.K:
        count = insn.imm & 31
        return lines + ([f"{mnemonic} {low}, {low}, #{count}"] if count else []) + put32(insn.dst, low)
    setup, count = fetch_low(insn.src, TMP2[0])
    return lines + setup + [f"and ip, {count}, #31", f"{mnemonic} {low}, {low}, ip"] + put32(insn.dst, low)


def shift64(insn: Insn) -> list[str]:
    """64-bit shifts by an immediate (split at 32) or by a register (masked to 6 bits)."""
    if insn.source == isa.K:
        count = insn.imm & 63
        if count == 0:
            return []
        lines, (low, high) = fetch64(insn.dst, TMP1)
        return lines + _shift64_immediate(insn.op, count, low, high) + put64(insn.dst, (low, high))
    # count c in r8; r9 and ip hold 32 - c and c - 32, whose negative values shift every bit out
    lines, count = fetch_low(insn.src, TMP2[0])
    lines += [f"and r8, {count}, #63"]
    setup, (low, high) = fetch64(insn.dst, TMP1)
    lines += setup
    if insn.op == isa.LSH:
        # high = high << c | low << (c - 32) | low >> (32 - c); low <<= c
        lines += ["sub ip, r8, #32", "rsb r9, r8, #32", f"lsl r10, {high}, r8", f"orr r10, r10, {low}, lsl ip",
                  f"orr {high}, r10, {low}, lsr r9", f"lsl {low}, {low}, r8"]
    elif insn.op == isa.RSH:
        # low = low >> c | high << (32 - c) | high >> (c - 32); high >>= c
        lines += ["rsb ip, r8, #32", "sub r9, r8, #32", f"lsr r10, {low}, r8", f"orr r10, r10, {high}, lsl ip",
                  f"orr {low}, r10, {high}, lsr r9", f"lsr {high}, {high}, r8"]
    else:
        # as RSH, but high >> (c - 32) is arithmetic and taken only when c >= 32 (asr of a
        # negative count would give the sign, not 0)
        lines += ["rsb ip, r8, #32", "subs r9, r8, #32", f"lsr r10, {low}, r8", f"orr r10, r10, {high}, lsl ip",
                  f"orrpl r10, r10, {high}, asr r9", f"mov {low}, r10", f"asr {high}, {high}, r8"]
    return lines + put64(insn.dst, (low, high))


def _shift64_immediate(op: int, count: int, low: str, high: str) -> list[str]:
    """A 64-bit shift by 1-63 (count 0 emits nothing: ARM's lsr/asr #0 would mean 32)."""
    if op == isa.LSH:
        if count < 32:
            return [f"lsl ip, {high}, #{count}", f"orr {high}, ip, {low}, lsr #{32 - count}",
                    f"lsl {low}, {low}, #{count}"]
        first = f"mov {high}, {low}" if count == 32 else f"lsl {high}, {low}, #{count - 32}"
        return [first, f"mov {low}, #0"]
    mnemonic = "lsr" if op == isa.RSH else "asr"
    if count < 32:
        return [f"lsr ip, {low}, #{count}", f"orr {low}, ip, {high}, lsl #{32 - count}",
                f"{mnemonic} {high}, {high}, #{count}"]
    first = f"mov {low}, {high}" if count == 32 else f"{mnemonic} {low}, {high}, #{count - 32}"
    return [first, f"asr {high}, {high}, #31" if op == isa.ARSH else f"mov {high}, #0"]


def divide(insn: Insn, is64: bool, use_subroutine: Callable[[str], None]) -> list[str]:
    """DIV/MOD (signed when off = 1): a call to the runtime subroutine, eBPF r0 and r1 saved around it.

    The operands go through TMP1/TMP2 first, so that no argument move overwrites
    another operand whatever registers dst and src are.
    """
    name = runtime.subroutine(insn.off == 1, is64)
    use_subroutine(name)
    remainder = insn.op == isa.MOD
    if is64:
        lines, (low, high) = fetch64(insn.dst, TMP1)
        lines += [f"mov r6, {low}", f"mov r7, {high}"] if low != "r6" else []
        setup, (src_low, src_high) = source_pair(insn)
        lines += setup + ([f"mov r8, {src_low}", f"mov r9, {src_high}"] if src_low != "r8" else [])
        result = ("r2", "r3") if remainder else ("r0", "r1")
        return lines + ["push {r0, r1, r2, r3, ip, lr}", "mov r0, r6", "mov r1, r7", "mov r2, r8", "mov r3, r9",
                        f"bl {name}", f"mov r6, {result[0]}", f"mov r7, {result[1]}",
                        "pop {r0, r1, r2, r3, ip, lr}"] + put64(insn.dst, TMP1)
    lines, low = fetch_low(insn.dst, TMP1[0])
    lines += [f"mov r6, {low}"] if low != "r6" else []
    setup, divisor = source_low(insn)
    lines += setup + ([f"mov r8, {divisor}"] if divisor != "r8" else [])
    return lines + ["push {r0, r1, r2, r3, ip, lr}", "mov r0, r6", "mov r1, r8", f"bl {name}",
                    f"mov r6, {'r1' if remainder else 'r0'}", "pop {r0, r1, r2, r3, ip, lr}"] + put32(insn.dst, "r6")


def swap(insn: Insn) -> list[str]:
    """le/be relative to this little-endian host; ALU64|END (bswap) always swaps."""
    width = insn.imm
    swapping = insn.klass == isa.ALU64 or insn.source == isa.TO_BE
    if width == 64:
        if not swapping:
            return []  # le64 on a little-endian host: nothing to do
        lines, (low, high) = fetch64(insn.dst, TMP1)
        return lines + [f"rev ip, {low}", f"rev {low}, {high}", f"mov {high}, ip"] + put64(insn.dst, (low, high))
    lines, low = fetch_low(insn.dst, TMP1[0])
    if width == 16:
        lines += ([f"rev16 {low}, {low}"] if swapping else []) + [f"uxth {low}, {low}"]
    elif swapping:
        lines.append(f"rev {low}, {low}")
    return lines + put32(insn.dst, low)
