"""Where each eBPF register lives on arm32, and the moves between there and ARM registers.

Every eBPF register is 64 bits wide; ARM registers hold 32. As the kernel's
arch/arm/net/bpf_jit_32.c (``bpf2a32[]``) does, r0, r1 and r6 live in pairs of ARM
registers (low word in an even register, high word in the next one, so ``ldrd``/
``strd``/``ldrexd``/``strexd`` can move a pair at once) and the other eight live in
a scratch area of the native stack, addressed from ``fp``. A builder fetches an
operand into ARM registers (:func:`fetch64`, :func:`fetch_low`), computes there and
puts the result back (:func:`put64`, :func:`put32`); for a register-resident
operand the fetch is free.

Scratch registers no eBPF register uses: the pairs TMP1 (r6:r7) and TMP2 (r8:r9) as
in the kernel, plus ip (r12) and r10. ``lr`` holds the body's return address for the
whole body (``exit`` is ``bx lr``), so unlike the kernel this JIT never uses it as
a scratch register: every call site saves it.
"""
from __future__ import annotations

from dataclasses import dataclass

MASK32 = 0xFFFF_FFFF


@dataclass(frozen=True)
class Home:
    """An eBPF register's home: two ARM registers, or two words at ``fp + slot``."""

    low: str | None = None
    high: str | None = None
    slot: int = 0  # fp offset of the low word when stacked; the high word is at slot + 4

    @property
    def stacked(self) -> bool:
        return self.low is None

    def describe(self) -> str:
        if self.stacked:
            return f"[fp{self.slot + 4:+d}]:[fp{self.slot:+d}]"
        return f"{self.high}:{self.low}"


# eBPF register -> its home: the kernel's map (bpf2a32[] in arch/arm/net/bpf_jit_32.c),
# stack words at the kernel's offsets (STACK_OFFSET(k) = -4 - 4k below the entry fp).
HOMES: dict[int, Home] = {
    0: Home("r0", "r1"), 1: Home("r2", "r3"),
    2: Home(slot=-8), 3: Home(slot=-16), 4: Home(slot=-24), 5: Home(slot=-32),
    6: Home("r4", "r5"),
    7: Home(slot=-40), 8: Home(slot=-48), 9: Home(slot=-56), 10: Home(slot=-64),
}
SCRATCH_SIZE = 64  # bytes of the stacked homes below fp
TMP1 = ("r6", "r7")  # kernel TMP_REG_1
TMP2 = ("r8", "r9")  # kernel TMP_REG_2
Pair = tuple[str, str]


def arm_immediate(value: int) -> bool:
    """Whether ``value`` (32 bits) is an ARM modified immediate: 8 bits rotated right by an even amount."""
    value &= MASK32
    return any(((value << rotation | value >> (32 - rotation)) & MASK32) <= 0xFF for rotation in range(0, 32, 2))


def move_immediate(register: str, value: int) -> list[str]:
    """``register`` = the 32-bit ``value``: mov or mvn when it fits, else movw (+ movt), no literal pool."""
    value &= MASK32
    if arm_immediate(value):
        return [f"mov {register}, #{value:#x}"]
    if arm_immediate(~value):
        return [f"mvn {register}, #{~value & MASK32:#x}"]
    lines = [f"movw {register}, #{value & 0xFFFF:#x}"]
    return lines + [f"movt {register}, #{value >> 16:#x}"] if value >> 16 else lines


def immediate_operand(value: int, scratch: str) -> tuple[list[str], str]:
    """``value`` as the second operand of a data-processing instruction: ``#imm``, or loaded into ``scratch``."""
    value &= MASK32
    if arm_immediate(value):
        return [], f"#{value:#x}"
    return move_immediate(scratch, value), scratch


def fetch64(register: int, into: Pair) -> tuple[list[str], Pair]:
    """The eBPF register as (low, high) ARM registers: its own pair, or loaded into ``into``."""
    home = HOMES[register]
    if home.stacked:
        return [f"ldrd {into[0]}, {into[1]}, [fp, #{home.slot}]"], into
    return [], (home.low, home.high)  # type: ignore[return-value]


def fetch_low(register: int, into: str) -> tuple[list[str], str]:
    """The low 32 bits of the eBPF register in an ARM register: its own, or loaded into ``into``."""
    home = HOMES[register]
    if home.stacked:
        return [f"ldr {into}, [fp, #{home.slot}]"], into
    return [], home.low  # type: ignore[return-value]


def fetch_high(register: int, into: str) -> tuple[list[str], str]:
    """The high 32 bits of the eBPF register in an ARM register."""
    home = HOMES[register]
    if home.stacked:
        return [f"ldr {into}, [fp, #{home.slot + 4}]"], into
    return [], home.high  # type: ignore[return-value]


def put64(register: int, value: Pair) -> list[str]:
    """The eBPF register = the (low, high) ARM registers ``value``."""
    home = HOMES[register]
    if home.stacked:
        # every pair a builder hands over is an even register and the next (TMP1, TMP2 or the
        # homes r0-r1, r2-r3, r4-r5): strd stores it in one go (keystone rejects any other pair)
        return [f"strd {value[0]}, {value[1]}, [fp, #{home.slot}]"]
    lines = []
    if value[0] != home.low:
        lines.append(f"mov {home.low}, {value[0]}")
    if value[1] != home.high:
        lines.append(f"mov {home.high}, {value[1]}")
    return lines


def put32(register: int, low: str) -> list[str]:
    """The eBPF register = the zero-extended ARM register ``low`` (every ALU32 result)."""
    home = HOMES[register]
    if home.stacked:
        partner = {"r6": "r7", "r8": "r9"}.get(low)
        if partner:
            return [f"mov {partner}, #0", f"strd {low}, {partner}, [fp, #{home.slot}]"]
        return [f"str {low}, [fp, #{home.slot}]", "mov ip, #0", f"str ip, [fp, #{home.slot + 4}]"]
    lines = [f"mov {home.low}, {low}"] if low != home.low else []
    return lines + [f"mov {home.high}, #0"]


def working_pair(register: int, scratch: Pair) -> Pair:
    """The ARM registers a builder computes the eBPF register's new value in."""
    home = HOMES[register]
    return scratch if home.stacked else (home.low, home.high)  # type: ignore[return-value]


def working_low(register: int, scratch: str) -> str:
    home = HOMES[register]
    return scratch if home.stacked else home.low  # type: ignore[return-value]
