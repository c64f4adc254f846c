"""The x86_32 backend's own parts: its 64-bit division routines and its cdecl/regparm ABI hooks.

Expected values come from Python's integer arithmetic, never from the interpreter.
"""
import random

import keystone
import pytest
import unicorn
from unicorn import x86_const

import arches
from harness import layout
from harness.cases.asm import assemble
from harness.running.emulator import engine_for

U64 = (1 << 64) - 1


def signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def expected(op: str, dividend: int, divisor: int) -> int:
    """RFC 9669: div by 0 is 0, mod by 0 keeps dst; signed forms truncate toward zero."""
    if divisor == 0:
        return 0 if op in ("div", "sdiv") else dividend
    if op == "div":
        return dividend // divisor
    if op == "mod":
        return dividend % divisor
    a, b = signed(dividend), signed(divisor)
    quotient = abs(a) // abs(b) * (-1 if (a < 0) != (b < 0) else 1)
    return (quotient if op == "sdiv" else a - quotient * b) & U64


def estimate_is_one_short(dividend: int, divisor: int) -> bool:
    """Whether Hacker's Delight's estimate (divisor >= 2**32) needs its final correction.

    Only used to choose operands that take both ways out of the routine's last compare."""
    n = 64 - divisor.bit_length()
    q0 = (((dividend >> 1) // ((divisor << n) >> 32)) << n) >> 31
    return max(q0 - 1, 0) != dividend // divisor


def operand_pairs() -> list[tuple[int, int]]:
    """Pairs for every path of Ludivmod64 and every sign combination of Lsdivmod64."""
    rng = random.Random(15)
    edges = [0, 1, 2, 3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000, 0x1FFFFFFFF, 0xFFFFFFFF00000000,
             0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0x8000000000000001, U64 - 1, U64]
    pairs = [(a, b) for a in edges for b in edges]
    # divisor < 2**32: one div (high word below the divisor) and two divs (not)
    pairs += [(rng.getrandbits(32 + rng.randint(0, 20)) % (d << 32), d)
              for d in (rng.getrandbits(32) | 1 for _ in range(20))]
    pairs += [(rng.getrandbits(64), rng.getrandbits(rng.randint(1, 32)) | 1) for _ in range(20)]
    # divisor >= 2**32: every normalisation shift, with and without the final correction
    wide = [(rng.getrandbits(64), rng.getrandbits(bits) | (1 << (bits - 1))) for bits in range(33, 65)
            for _ in range(8)]
    corrected = [pair for pair in wide if estimate_is_one_short(*pair)]
    assert corrected and len(corrected) < len(wide), "the operands must reach both ends of the correction"
    return pairs + wide


@pytest.mark.parametrize("op", ["div", "mod", "sdiv", "smod"])
def test_64_bit_division_routine_matches_integer_arithmetic(op):
    pairs = operand_pairs()
    backend = arches.get("x86_32")
    # each pair in memory as (dividend, divisor); the program overwrites the dividend with the result
    program = assemble("\n".join(["ldxdw %r2, [%r1]", "ldxdw %r3, [%r1+8]", f"{op} %r2, %r3",
                                  "stxdw [%r1], %r2", "add %r1, 16"] * len(pairs) + ["mov %r0, 0", "exit"]))
    memory = b"".join(a.to_bytes(8, "little") + b.to_bytes(8, "little") for a, b in pairs)
    outcome = engine_for(backend).run(backend.compile(program), memory)
    assert outcome.kind == "return", outcome.detail
    wrong = []
    for number, (a, b) in enumerate(pairs):
        got = int.from_bytes(outcome.memory[16 * number:16 * number + 8], "little")
        if got != expected(op, a, b):
            wrong.append(f"{a:#x} {op} {b:#x} = {got:#x}, expected {expected(op, a, b):#x}")
    assert not wrong, f"{len(wrong)} of {len(pairs)} wrong, e.g. {wrong[:4]}"


def test_helpers_get_r1_in_edx_eax_and_r2_to_r5_as_stack_u64():
    # helper 104 returns r1 + 3r2 + 5r3 + 7r4 + 11r5: every argument's two words count
    backend = arches.get("x86_32")
    values = [0x1_0000_0002, 0x3_0000_0004, 0x5_0000_0006, 0x7_0000_0008, 0x9_0000_000A]
    program = assemble("\n".join(f"lddw %r{n + 1}, {value:#x}" for n, value in enumerate(values))
                       + "\ncall 104\nexit")
    result = engine_for(backend).run(backend.compile(program)).r0
    assert result == sum(weight * value for weight, value in zip((1, 3, 5, 7, 11), values)) & U64


def test_entry_arguments_are_cdecl_stack_words_and_the_result_is_edx_eax():
    backend = arches.get("x86_32")
    program = assemble("mov %r0, %r1\nlsh %r0, 32\nor %r0, %r2\nexit")
    outcome = engine_for(backend).run(backend.compile(program), bytes(5))
    assert outcome.r0 == (layout.MEM_BASE << 32) | 5


@pytest.mark.parametrize("stored, succeeds", [(5, True), (6, False)])
def test_unicorn_cmpxchg_in_32_bit_mode_leaves_eax_as_the_hardware_does(stored, succeeds):
    """The x86-64 deviation (a successful cmpxchg writes EAX) changes nothing in 32-bit mode:
    EAX ends as the old memory value either way, as on the real CPU. Pinned: revisit if it changes."""
    code = bytes(keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_32).asm(
        "mov eax, 5; mov ecx, 7; lock cmpxchg dword ptr [esi], ecx", layout.CODE_BASE)[0])
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_32)
    uc.mem_map(layout.CODE_BASE, 0x10000)
    uc.mem_map(layout.MEM_BASE, 0x1000)
    uc.mem_write(layout.CODE_BASE, code)
    uc.mem_write(layout.MEM_BASE, stored.to_bytes(4, "little"))
    uc.reg_write(x86_const.UC_X86_REG_ESI, layout.MEM_BASE)
    uc.emu_start(layout.CODE_BASE, layout.CODE_BASE + len(code))
    assert uc.reg_read(x86_const.UC_X86_REG_EAX) == stored
    assert int.from_bytes(uc.mem_read(layout.MEM_BASE, 4), "little") == (7 if succeeds else stored)
