"""Helper functions callable with ``call N``, shared by the interpreter and the emulators.

A helper sees the five argument registers and the program's memory through a
:class:`MemoryAccess`, so the same Python code runs for the oracle and, from a
Unicorn hook on the helper's stub address, for every JIT target.

Helper numbering is a choice of *helper set* (see :data:`HELPER_SETS`):

* ``harness`` (the default): numbers 1-3 are the kernel's map helpers (their maps:
  harness/oracle/maps.py, reached as ``memory.maps``); the test helpers use numbers
  from 100 up so they never collide with kernel helper numbers.
* ``ubpf``: uBPF's test helpers as its test runner registers them (vm/test.c):
  0 gather_bytes, 1 memfrob, 2 trash_registers, 3 sqrti, 4 strcmp_ext, 5 unwind.

A corpus folder picks a set with a ``harness.toml`` beside its cases
(harness/cases/config.py); a run can set the default for the others.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

from harness.cases.config import DEFAULT_HELPER_SET, HELPER_SET_NAMES

U64 = (1 << 64) - 1


class MemoryFault(Exception):
    """An access to an address no region maps."""

    def __init__(self, address: int, size: int = 1, write: bool = False) -> None:
        super().__init__(f"{'write' if write else 'read'} of {size} byte(s) at {address:#x}")
        self.address = address
        self.size = size
        self.write = write


class MemoryAccess(Protocol):
    """The program's memory as a helper sees it."""

    byte_order: str

    def read(self, address: int, size: int) -> bytes: ...

    def write(self, address: int, data: bytes) -> None: ...


HelperFunction = Callable[[MemoryAccess, int, int, int, int, int], int]


@dataclass(frozen=True)
class Helper:
    number: int
    name: str
    function: HelperFunction
    summary: str
    arguments: int  # how many of r1-r5 it reads (the validator rejects a call with one undefined)
    # uBPF's unwind extension: when this helper returns 0 the whole program ends at once,
    # returning 0 (vm/ubpf_vm.c: ``inst.imm == vm->unwind_stack_extension_index && reg[0] == 0``).
    unwinds: bool = False
    # The helper overwrites every caller-saved register, as a native function may: after
    # it, eBPF r1-r5 hold TRASHED_ARGUMENTS, and on a JIT target every other caller-saved
    # native register holds a pattern too (a JIT that keeps live values there is caught).
    trashes_registers: bool = False


def gather(memory: MemoryAccess, a: int, b: int, c: int, d: int, e: int) -> int:
    """The low byte of each argument, in argument order, a in bits 32-39 and e in 0-7.

    Checks that all five arguments arrive in the right registers.
    """
    return (((a & 0xFF) << 32) | ((b & 0xFF) << 24) | ((c & 0xFF) << 16)
            | ((d & 0xFF) << 8) | (e & 0xFF))


def memfrob(memory: MemoryAccess, pointer: int, length: int, *_: int) -> int:
    """XOR ``length`` bytes at ``pointer`` with 42 in place; returns 0 (writes through a pointer)."""
    length &= 0xFFFF
    data = memory.read(pointer, length)
    memory.write(pointer, bytes(byte ^ 42 for byte in data))
    return 0


def sqrti(memory: MemoryAccess, value: int, *_: int) -> int:
    """Integer square root of an unsigned 64-bit argument."""
    return math.isqrt(value & U64)


def strcmp(memory: MemoryAccess, left: int, right: int, *_: int) -> int:
    """C strcmp of two NUL-terminated strings (at most 4096 bytes each); -1/0/1 as u64."""
    for index in range(4096):
        a = memory.read(left + index, 1)[0]
        b = memory.read(right + index, 1)[0]
        if a != b:
            return 1 if a > b else U64  # -1
        if a == 0:
            return 0
    return 0


def mix(memory: MemoryAccess, a: int, b: int, c: int, d: int, e: int) -> int:
    """A 64-bit function of all five full-width arguments (catches truncated arguments)."""
    return (a + 3 * b + 5 * c + 7 * d + 11 * e) & U64


def map_lookup_elem(memory: MemoryAccess, handle: int, key: int, *_: int) -> int:
    """Kernel helper 1: pointer to the value stored under ``*key``, or 0."""
    maps = getattr(memory, "maps", None)
    return 0 if maps is None else maps.lookup(memory, handle, key)


def map_update_elem(memory: MemoryAccess, handle: int, key: int, value: int, flags: int, *_: int) -> int:
    """Kernel helper 2: store ``*value`` under ``*key``; 0 or a negative errno."""
    maps = getattr(memory, "maps", None)
    return (-22) & U64 if maps is None else maps.update(memory, handle, key, value, flags)


def map_delete_elem(memory: MemoryAccess, handle: int, key: int, *_: int) -> int:
    """Kernel helper 3: remove ``*key``; 0 or a negative errno."""
    maps = getattr(memory, "maps", None)
    return (-22) & U64 if maps is None else maps.delete(memory, handle, key)


def ubpf_gather_bytes(memory: MemoryAccess, a: int, b: int, c: int, d: int, e: int) -> int:
    """uBPF's gather_bytes(u8 a, .., u8 e): a in bits 32-39 down to e in bits 0-7."""
    return gather(memory, a, b, c, d, e)


def ubpf_memfrob(memory: MemoryAccess, pointer: int, length: int, *_: int) -> int:
    """glibc memfrob(s, n), which uBPF registers as helper 1: xor n bytes with 42; returns s."""
    data = memory.read(pointer, length & U64)
    memory.write(pointer, bytes(byte ^ 42 for byte in data))
    return pointer


# What a trashing helper leaves in eBPF r1-r5 (and 0xf0 in r0): the values uBPF's x86-64
# trash_registers writes into rax and the first argument registers (vm/test.c).
TRASHED_RETURN = 0xF0
TRASHED_ARGUMENTS = (0xF1, 0xF2, 0xF3, 0xF4, 0xF5)
TRASHED_OTHER = 0xF6  # first value for the other caller-saved native registers (then 0xf7, ...)


def ubpf_trash_registers(memory: MemoryAccess, *_: int) -> int:
    """uBPF's trash_registers: overwrites the caller-saved registers; r0 is then 0xf0.

    uBPF declares it void; its x86-64 and arm64 versions both leave 0xf0 in the
    return register, which is what r0 holds afterwards there. The clobbering itself is
    done by whoever runs the helper (flag ``trashes_registers``).
    """
    return TRASHED_RETURN


def ubpf_sqrti(memory: MemoryAccess, value: int, *_: int) -> int:
    """uBPF's sqrti(u32 x) = (u32) sqrt(x): the square root of the low 32 bits, rounded down.

    For a 32-bit x, C's double sqrt truncated equals the integer square root.
    """
    return math.isqrt(value & 0xFFFFFFFF)


def ubpf_strcmp_ext(memory: MemoryAccess, left: int, right: int, *_: int) -> int:
    """C strcmp, which uBPF registers as strcmp_ext: the difference of the first differing
    bytes (as unsigned char), an int; returned zero-extended from 32 bits, as an x86-64
    function returning int leaves rax (programs compare the low 32 bits)."""
    for index in range(1 << 16):
        a = memory.read(left + index, 1)[0]
        b = memory.read(right + index, 1)[0]
        if a != b or a == 0:
            return (a - b) & 0xFFFFFFFF
    return 0


def ubpf_unwind(memory: MemoryAccess, value: int, *_: int) -> int:
    """uBPF's unwind(i) = i; uBPF ends the program when it returns 0 (its unwind index 5)."""
    return value


HELPERS: dict[int, Helper] = {
    helper.number: helper for helper in (
        Helper(1, "map_lookup_elem", map_lookup_elem, "pointer to the value under *r2 in map r1, or 0", 2),
        Helper(2, "map_update_elem", map_update_elem, "map r1: store *r3 under *r2 (flags r4); 0 or -errno", 4),
        Helper(3, "map_delete_elem", map_delete_elem, "map r1: delete *r2; 0 or -errno", 2),
        Helper(100, "gather", gather, "low byte of each argument, a..e into bits 39..0", 5),
        Helper(101, "memfrob", memfrob, "xor each byte of (ptr, len) with 42, return 0", 2),
        Helper(102, "sqrti", sqrti, "integer square root", 1),
        Helper(103, "strcmp", strcmp, "compare two NUL-terminated strings: -1, 0 or 1", 2),
        Helper(104, "mix", mix, "a + 3b + 5c + 7d + 11e (mod 2**64)", 5),
    )
}


UBPF_HELPERS: dict[int, Helper] = {
    helper.number: helper for helper in (
        Helper(0, "gather_bytes", ubpf_gather_bytes, "low byte of each argument, a..e into bits 39..0", 5),
        Helper(1, "memfrob", ubpf_memfrob, "xor each byte of (ptr, len) with 42, return ptr", 2),
        Helper(2, "trash_registers", ubpf_trash_registers,
               "overwrite the caller-saved registers (r1-r5 = 0xf1..0xf5), r0 = 0xf0", 0, trashes_registers=True),
        Helper(3, "sqrti", ubpf_sqrti, "integer square root of the low 32 bits", 1),
        Helper(4, "strcmp_ext", ubpf_strcmp_ext, "C strcmp: difference of the first differing bytes", 2),
        Helper(5, "unwind", ubpf_unwind, "returns r1; when that is 0 the program ends returning 0", 1,
               unwinds=True),
    )
}

HELPER_SETS: dict[str, dict[int, Helper]] = {"harness": HELPERS, "ubpf": UBPF_HELPERS}
assert tuple(HELPER_SETS) == HELPER_SET_NAMES and DEFAULT_HELPER_SET in HELPER_SETS


def helper_set(name: str) -> dict[int, Helper]:
    """The helpers of the set called ``name`` (ValueError naming the known sets)."""
    try:
        return HELPER_SETS[name]
    except KeyError:
        raise ValueError(f"unknown helper set {name!r} (known: {', '.join(HELPER_SETS)})") from None


def call_helper(number: int, memory: MemoryAccess, args: tuple[int, int, int, int, int],
                helpers: dict[int, Helper] = HELPERS) -> int:
    """Run helper ``number`` of ``helpers``; the result is an unsigned 64-bit r0."""
    return helpers[number].function(memory, *args) & U64
