"""Out-of-line division subroutines, placed after the packet-abort code when a program uses them.

The kernel's arm32 JIT calls C functions for division (``jit_udiv32``/``jit_mod32``
in arch/arm/net/bpf_jit_32.c) on CPUs without the integer-divide extension, with
the AAPCS convention: arguments in r0, r1 (64-bit ones in r0:r1 and r2:r3), the
result in r0 (r0:r1). These are the JIT's own subroutines with that convention,
written here in ARM assembly (no ``udiv``/``sdiv``: the emulated Cortex-A8 has none):

* ``Ludivmod32``: r0 / r1 -> quotient r0, remainder r1 (unsigned, 32 bits)
* ``Lsdivmod32``: the same, signed (the remainder takes the dividend's sign)
* ``Ludivmod64``: r0:r1 / r2:r3 -> quotient r0:r1, remainder r2:r3 (unsigned)
* ``Lsdivmod64``: the same, signed

They also implement eBPF's edge rules, so no call site needs a guard: a zero
divisor gives quotient 0 and remainder = the dividend (div by 0 is 0, mod by 0
leaves dst), and the signed forms divide magnitudes, so INT_MIN / -1 is INT_MIN
(the magnitude 2^31 negated) and INT_MIN % -1 is 0. Like C functions they may
change r0-r3 and ip and keep r4-r11; every call site saves r0-r3 (eBPF r0 and r1)
and lr around the call, as the kernel's ``emit_udivmod`` saves the caller-saved
registers.

The unsigned cores are restoring shift-and-subtract loops, one quotient bit per
step; the dividend's leading zeros are skipped (``clz`` in the 32-bit core, a whole
zero upper word in the 64-bit one), so a division costs at most about 10 native
instructions per quotient bit. After k steps the remainder is the dividend's top k
bits modulo the divisor, below 2^k, so shifting it never carries out of its width.
"""
from __future__ import annotations

UDIVMOD32, SDIVMOD32, UDIVMOD64, SDIVMOD64 = "Ludivmod32", "Lsdivmod32", "Ludivmod64", "Lsdivmod64"

# Each subroutine: its code, and the subroutines it calls.
_CODE: dict[str, list[str]] = {
    UDIVMOD32: [
        f"{UDIVMOD32}:",
        "cmp r1, #0",  # by zero: quotient 0, remainder the dividend
        "moveq r1, r0",
        "moveq r0, #0",
        "bxeq lr",
        "clz ip, r0",  # skip the dividend's leading zeros
        "lsl r0, r0, ip",
        "mov r2, #0",  # the remainder
        "rsbs r3, ip, #32",  # quotient bits still to find
        f"beq {UDIVMOD32}_done",
        f"{UDIVMOD32}_loop:",
        "adds r0, r0, r0",  # the next dividend bit moves into the remainder
        "adc r2, r2, r2",
        "cmp r2, r1",
        f"bcc {UDIVMOD32}_next",
        "sub r2, r2, r1",
        "orr r0, r0, #1",  # a quotient bit enters where the dividend bit left
        f"{UDIVMOD32}_next:",
        "subs r3, r3, #1",
        f"bne {UDIVMOD32}_loop",
        f"{UDIVMOD32}_done:",
        "mov r1, r2",
        "bx lr",
    ],
    SDIVMOD32: [
        f"{SDIVMOD32}:",
        "push {r4, r5, r6, lr}",
        "mov r4, r0",  # the remainder's sign is the dividend's
        "eor r5, r0, r1",  # the quotient's sign
        "cmp r0, #0",
        "rsblt r0, r0, #0",
        "cmp r1, #0",
        "rsblt r1, r1, #0",
        f"bl {UDIVMOD32}",
        "cmp r5, #0",
        "rsblt r0, r0, #0",
        "cmp r4, #0",
        "rsblt r1, r1, #0",
        "pop {r4, r5, r6, pc}",
    ],
    UDIVMOD64: [
        f"{UDIVMOD64}:",
        "orrs ip, r2, r3",
        f"bne {UDIVMOD64}_divide",
        "mov r2, r0",  # by zero: quotient 0, remainder the dividend
        "mov r3, r1",
        "mov r0, #0",
        "mov r1, #0",
        "bx lr",
        f"{UDIVMOD64}_divide:",
        "push {r4, r5}",
        "mov r4, #0",  # the remainder r5:r4
        "mov r5, #0",
        "mov ip, #64",  # quotient bits still to find
        "cmp r1, #0",  # a zero upper word: its 32 steps would only shift zeros
        "moveq r1, r0",
        "moveq r0, #0",
        "moveq ip, #32",
        f"{UDIVMOD64}_loop:",
        "adds r0, r0, r0",  # the next dividend bit moves into the remainder
        "adcs r1, r1, r1",
        "adcs r4, r4, r4",
        "adc r5, r5, r5",
        "cmp r5, r3",
        "cmpeq r4, r2",
        f"bcc {UDIVMOD64}_next",
        "subs r4, r4, r2",
        "sbc r5, r5, r3",
        "orr r0, r0, #1",
        f"{UDIVMOD64}_next:",
        "subs ip, ip, #1",
        f"bne {UDIVMOD64}_loop",
        "mov r2, r4",
        "mov r3, r5",
        "pop {r4, r5}",
        "bx lr",
    ],
    SDIVMOD64: [
        f"{SDIVMOD64}:",
        "push {r4, r5, r6, lr}",
        "mov r4, r1",  # the remainder's sign is the dividend's
        "eor r5, r1, r3",  # the quotient's sign
        *[line for step, (low, high, sign) in enumerate((("r0", "r1", "r1"), ("r2", "r3", "r3")))
          for line in (f"cmp {sign}, #0", f"bge {SDIVMOD64}_positive{step}", f"rsbs {low}, {low}, #0",
                       f"rsc {high}, {high}, #0", f"{SDIVMOD64}_positive{step}:")],
        f"bl {UDIVMOD64}",
        *[line for step, (low, high, sign) in enumerate((("r0", "r1", "r5"), ("r2", "r3", "r4")), start=2)
          for line in (f"cmp {sign}, #0", f"bge {SDIVMOD64}_positive{step}", f"rsbs {low}, {low}, #0",
                       f"rsc {high}, {high}, #0", f"{SDIVMOD64}_positive{step}:")],
        "pop {r4, r5, r6, pc}",
    ],
}
_CALLS = {SDIVMOD32: (UDIVMOD32,), SDIVMOD64: (UDIVMOD64,)}


def subroutine(signed: bool, is64: bool) -> str:
    """The name of the subroutine a division or modulo of this kind calls."""
    return {(False, False): UDIVMOD32, (True, False): SDIVMOD32,
            (False, True): UDIVMOD64, (True, True): SDIVMOD64}[signed, is64]


def subroutine_code(wanted: set[str]) -> list[str]:
    """The code of the ``wanted`` subroutines and of those they call, in a fixed order."""
    needed = set(wanted)
    for name in wanted:
        needed.update(_CALLS.get(name, ()))
    return [line for name in _CODE if name in needed for line in _CODE[name]]
