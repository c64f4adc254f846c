"""Helper functions callable with ``call N``, shared by the interpreter and the emulators.

A helper sees the five argument registers and the program's memory through a
:class:`MemoryAccess`, so the same Python code runs for the oracle and, from a
Unicorn hook on the helper's stub address, for every JIT target.

Numbers 1-3 are the kernel's map helpers (their maps: harness/oracle/maps.py, reached
as ``memory.maps``); the test helpers use numbers from 100 up so they never
collide with kernel helper numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

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


def call_helper(number: int, memory: MemoryAccess, args: tuple[int, int, int, int, int]) -> int:
    """Run helper ``number``; the result is an unsigned 64-bit r0."""
    return HELPERS[number].function(memory, *args) & U64
