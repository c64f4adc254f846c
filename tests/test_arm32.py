"""The arm32 backend's own parts: its division subroutines and its AAPCS ABI hooks.

Expected values come from Python's integer arithmetic, never from the interpreter.
"""
import itertools
import random

import keystone
import pytest
import unicorn
from unicorn import arm_const as ua

import arches
from arches.arm32 import runtime
from harness import layout

CODE, STACK = 0x10000, 0x80000


def signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def expected(dividend: int, divisor: int, bits: int, is_signed: bool) -> tuple[int, int]:
    """(quotient, remainder) with eBPF's rules: by 0 -> (0, dividend); signed ones truncate toward zero."""
    mask = (1 << bits) - 1
    if divisor == 0:
        return 0, dividend
    if not is_signed:
        return dividend // divisor, dividend % divisor
    a, b = signed(dividend, bits), signed(divisor, bits)
    quotient = abs(a) // abs(b) * (-1 if (a < 0) != (b < 0) else 1)
    return quotient & mask, (a - quotient * b) & mask


@pytest.fixture(scope="module")
def machine():
    """A bare Cortex-A8 engine holding every subroutine, called from a one-line stub."""
    names = (runtime.UDIVMOD32, runtime.SDIVMOD32, runtime.UDIVMOD64, runtime.SDIVMOD64)
    assembler = keystone.Ks(keystone.KS_ARCH_ARM, keystone.KS_MODE_ARM)
    programs = {name: bytes(assembler.asm("\n".join([f"bl {name}", "b ."] + runtime.subroutine_code(set(names))),
                                          CODE)[0]) for name in names}
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_ARM)
    uc.ctl_set_cpu_model(ua.UC_CPU_ARM_CORTEX_A8)  # no udiv: the subroutines must not need it
    uc.mem_map(CODE, 0x10000)
    uc.mem_map(STACK - 0x10000, 0x10000)
    return uc, programs


def call(machine, name: str, words: list[int]) -> list[int]:
    """Call subroutine ``name`` with r0-r3 = ``words``; r0-r3 afterwards, r4-r11 checked unchanged."""
    uc, programs = machine
    uc.mem_write(CODE, programs[name])
    for number, value in enumerate(words + [0] * (4 - len(words))):
        uc.reg_write(ua.UC_ARM_REG_R0 + number, value)
    for number in range(4, 12):
        uc.reg_write(ua.UC_ARM_REG_R0 + number, 0xC0DE0000 + number)
    uc.reg_write(ua.UC_ARM_REG_SP, STACK)
    uc.emu_start(CODE, CODE + 4)  # the subroutine returns to the instruction after the bl
    saved = [uc.reg_read(ua.UC_ARM_REG_R0 + number) for number in range(4, 12)]
    assert saved == [0xC0DE0000 + number for number in range(4, 12)] and uc.reg_read(ua.UC_ARM_REG_SP) == STACK
    return [uc.reg_read(ua.UC_ARM_REG_R0 + number) for number in range(4)]


EDGES_32 = [0, 1, 2, 3, 7, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFE, 0xFFFFFFFF, 0x12345678, 0x10000]
EDGES_64 = [0, 1, 2, 7, 0xFFFFFFFF, 0x100000000, 0x1FFFFFFFF, 0xFFFFFFFF00000000, 0x7FFFFFFFFFFFFFFF,
            0x8000000000000000, 0x8000000000000001, (1 << 64) - 2, (1 << 64) - 1, 0x0123456789ABCDEF]


def pairs(edges: list[int], bits: int) -> list[tuple[int, int]]:
    rng = random.Random(bits)
    randoms = [(rng.getrandbits(bits), rng.getrandbits(rng.choice([8, bits // 2, bits]))) for _ in range(150)]
    return list(itertools.product(edges, edges)) + randoms


@pytest.mark.parametrize("is_signed", [False, True], ids=["unsigned", "signed"])
def test_divmod32_subroutines(machine, is_signed):
    name = runtime.SDIVMOD32 if is_signed else runtime.UDIVMOD32
    for dividend, divisor in pairs(EDGES_32, 32):
        r0, r1, _, _ = call(machine, name, [dividend, divisor])
        assert (r0, r1) == expected(dividend, divisor, 32, is_signed), (name, hex(dividend), hex(divisor))


@pytest.mark.parametrize("is_signed", [False, True], ids=["unsigned", "signed"])
def test_divmod64_subroutines(machine, is_signed):
    name = runtime.SDIVMOD64 if is_signed else runtime.UDIVMOD64
    mask = 0xFFFFFFFF
    for dividend, divisor in pairs(EDGES_64, 64):
        r0, r1, r2, r3 = call(machine, name, [dividend & mask, dividend >> 32, divisor & mask, divisor >> 32])
        assert (r0 | r1 << 32, r2 | r3 << 32) == expected(dividend, divisor, 64, is_signed), \
            (name, hex(dividend), hex(divisor))


def test_only_the_subroutines_a_program_calls_are_emitted():
    from harness.cases.asm import assemble

    backend = arches.get("arm32")
    plain = backend.translate(assemble("mov %r0, 7\nexit")).assembly
    assert "Ludivmod" not in plain and "Lsdivmod" not in plain
    signed64 = backend.translate(assemble("mov %r0, 7\nsdiv %r0, 2\nexit")).assembly
    assert "Lsdivmod64:" in signed64 and "Ludivmod64:" in signed64 and "divmod32:" not in signed64


def test_abi_hooks_pass_64_bit_values_in_pairs_and_on_the_stack():
    backend = arches.get("arm32")
    uc = unicorn.Uc(backend.uc_arch, backend.uc_mode)
    uc.mem_map(layout.NATIVE_STACK_BASE, layout.NATIVE_STACK_SIZE)
    backend.set_entry_arguments(uc, 0x1_2345_6789, 0xA_0000_0005)
    assert [uc.reg_read(ua.UC_ARM_REG_R0 + n) for n in range(4)] == [0x23456789, 1, 5, 0xA]
    sp = layout.NATIVE_STACK_TOP - 24
    uc.reg_write(ua.UC_ARM_REG_SP, sp)
    uc.mem_write(sp, bytes.fromhex("0300000030000000" "0400000040000000" "0500000050000000"))
    assert backend.helper_arguments(uc)[2:] == (0x30_0000_0003, 0x40_0000_0004, 0x50_0000_0005)
    backend.set_helper_result(uc, 0xFFFF_0000_0000_0001)
    assert (uc.reg_read(ua.UC_ARM_REG_R0), uc.reg_read(ua.UC_ARM_REG_R1)) == (1, 0xFFFF0000)
    assert backend.result(uc) == 0xFFFF_0000_0000_0001
