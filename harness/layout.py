"""The one memory layout shared by the interpreter and every emulator.

Same virtual addresses everywhere, so pointers a program computes, and the faults
it takes, compare equal between the oracle and each target. Every region is
64 KiB aligned and sized (SPARC64 under Unicorn needs 8 KiB, the others 4 KiB).
Address 0 and everything not listed here is unmapped: touching it is a fault.
"""
from __future__ import annotations

from dataclasses import dataclass

REGION_ALIGN = 0x10000  # a multiple of SPARC64's 8 KiB; 64 KiB lets offsets up to the 16-bit edge work

# Native-only regions (the interpreter never touches them).
# JIT output is loaded here, in the free 240 MiB below input memory. 128 MiB holds a program at the
# validator's limit of 1,000,000 instructions at up to 134 native bytes each: the heaviest measured
# (one instruction repeated, every kind, 2026-11) are riscv64 be64 (120) and sparc64 ldxdw (116, byte
# by byte); harness/tools/long_program.py's programs take 5-16 per instruction. All of it stays in MIPS's 256 MiB j/jal segment.
CODE_BASE = 0x0100_0000
CODE_SIZE = 0x0800_0000
STUB_BASE = 0x0080_0000  # helper stubs: helper N is called at STUB_BASE + N * STUB_STRIDE
STUB_STRIDE = 0x10
STUB_SIZE = 0x0001_0000
SENTINEL_BASE = 0x0090_0000  # return address of the JIT entry: reaching it ends the run
SENTINEL_SIZE = 0x0001_0000
NATIVE_STACK_BASE = 0x00A0_0000  # the native stack of the JIT code (callee-saved spills)
NATIVE_STACK_SIZE = 0x0010_0000
NATIVE_STACK_TOP = NATIVE_STACK_BASE + NATIVE_STACK_SIZE - 0x1000  # leave a red zone above

# Regions the eBPF program sees (mapped by the interpreter and the emulators alike).
CONTEXT_BASE = 0x00C0_0000  # run context: the packet's address and length, for LD_ABS/LD_IND
CONTEXT_SIZE = 0x0000_2000
PACKET_LEN_ADDR = CONTEXT_BASE + 0  # u64 in the target's byte order: length of input memory
PACKET_DATA_ADDR = CONTEXT_BASE + 8  # u64: address of input memory (MEM_BASE)

MEM_BASE = 0x1000_0000  # input memory: r1 points here at entry, r2 holds its length
STACK_BASE = 0x2000_0000  # eBPF stack region; r10 starts at its top
STACK_SIZE = 0x0001_0000
STACK_TOP = STACK_BASE + STACK_SIZE
FRAME_SIZE = 512  # each frame (main program and every local call) has 512 bytes
# The kernel's limits, which the validator enforces (RFC 9669 leaves both to the platform):
MAX_CALL_FRAMES = 8  # frames on a call chain, main included (include/linux/bpf_verifier.h MAX_CALL_FRAMES)
MAX_STACK = 512  # combined stack of the frames on a call chain (include/linux/filter.h MAX_BPF_STACK)
STACK_ROUNDING = 32  # each frame's stack counts rounded up to this, at least once (kernel check_max_stack_depth)
HELPER_DATA_BASE = 0x3000_0000  # memory owned by helpers and maps
HELPER_DATA_SIZE = 0x0000_2000
MAP_BASE = 0x4000_0000  # map values (harness/maps.py): they persist between a case's events
MAP_SIZE = 0x0004_0000

DEFAULT_INSN_BUDGET = 1_000_000  # eBPF instructions before a run ends with "limit"
NATIVE_BUDGET_FACTOR = 16  # native instructions allowed per eBPF instruction of budget


def mem_region_size(length: int) -> int:
    """Mapped size of the input-memory region for ``length`` bytes of input.

    The whole region is addressable (zero beyond the input), on every target.
    """
    return max(REGION_ALIGN, -(-length // REGION_ALIGN) * REGION_ALIGN)


@dataclass(frozen=True)
class Region:
    name: str
    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size


def program_regions(mem_length: int) -> list[Region]:
    """The regions an eBPF program may address, in address order."""
    return [
        Region("context", CONTEXT_BASE, CONTEXT_SIZE),
        Region("mem", MEM_BASE, mem_region_size(mem_length)),
        Region("stack", STACK_BASE, STACK_SIZE),
        Region("helper", HELPER_DATA_BASE, HELPER_DATA_SIZE),
        Region("maps", MAP_BASE, MAP_SIZE),
    ]
