"""What a native fault was: the access, its address and the native instruction that took it.

On x86-64, AArch64, PowerPC64 and SPARC64, Unicorn reports an access to unmapped
memory through its memory hook, with the address, size and direction, and the
program counter then points at the faulting instruction (measured, unicorn 2.1.4).
s390x is different: no memory hook runs; the CPU takes a program interruption
(the interrupt hook sees exception 3, EXCP_PGM, with the PC at the faulting
instruction), so the runner works the access out from that instruction's memory
operand, base + index + displacement as capstone decodes it.

Unicorn reports the *first unmapped byte* of an access that straddles into
unmapped memory (a read of 8 bytes at 0x1000fffc faults at 0x10010000, an 8-byte
write there at 0x10010003, measured), so a native fault matches the interpreter's
when its address lies inside the bytes of the access the interpreter faulted on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import capstone

# z/Architecture storage operands: the mnemonics the s390x backend emits with one, and the
# operand size in bytes (z/Architecture Principles of Operation, chapter 7). Stores write;
# loads, compare-and-swap and load-and-op read first (as the interpreter's atomics do).
S390X_STORES = {"stg": 8, "sty": 4, "st": 4, "sthy": 2, "sth": 2, "stcy": 1, "stc": 1, "strvg": 8,
                "strv": 4, "strvh": 2}
S390X_READS = {"lg": 8, "lgf": 4, "llgf": 4, "l": 4, "ly": 4, "lgh": 2, "llgh": 2, "lh": 2, "lhy": 2,
               "lgb": 1, "llgc": 1, "lb": 1, "lrvg": 8, "lrv": 4, "lrvh": 2, "csg": 8, "cs": 4, "csy": 4,
               "laag": 8, "laa": 4, "laalg": 8, "laal": 4, "lang": 8, "lan": 4, "laog": 8, "lao": 4,
               "laxg": 8, "lax": 4}


# Names of the CPU exception numbers Unicorn's interrupt hook passes (QEMU's numbering), where
# measured: x86 vectors (Intel SDM vol. 3, table 6-1), QEMU's EXCP_* for arm64 and s390x, SPARC
# V9 trap types (SPARC Architecture Manual V9, table 7-1).
EXCEPTIONS = {
    ("x86", 0): "#DE divide error", ("x86", 3): "#BP breakpoint", ("x86", 6): "#UD invalid opcode",
    ("x86", 13): "#GP general protection",
    ("arm64", 1): "undefined instruction (EXCP_UDEF)",
    ("s390x", 3): "program interruption (EXCP_PGM)",
    ("sparc", 0x28): "division_by_zero trap", ("sparc", 0x34): "mem_address_not_aligned trap",
}


def exception_name(cs_arch: int, number: int) -> str:
    arch = {capstone.CS_ARCH_X86: "x86", capstone.CS_ARCH_ARM64: "arm64", capstone.CS_ARCH_SYSZ: "s390x",
            capstone.CS_ARCH_SPARC: "sparc"}.get(cs_arch, "")
    return EXCEPTIONS.get((arch, number), f"exception {number}")


@dataclass(frozen=True)
class NativeFault:
    """One fault of JIT code, as the runner reports it."""

    access: str  # "read", "write", "fetch", or "" for a CPU exception that is no memory access
    address: int | None
    size: int
    pc: int
    instruction: str  # capstone's text of the instruction at ``pc`` ("" if it cannot be decoded)
    cause: str = ""  # for a CPU exception: Unicorn's words for it

    def describe(self, target: str) -> str:
        """``x86_64: read of 4 byte(s) at 0x10 by `mov eax, dword ptr [rdx + 0x10]` at 0x100046``."""
        where = f" by `{self.instruction}` at {self.pc:#x}" if self.instruction else f" at pc {self.pc:#x}"
        if self.access and self.address is not None:
            return f"{target}: {self.access} of {self.size} byte(s) at {self.address:#x}{where}"
        return f"{target}: CPU exception ({self.cause or 'no memory access'}){where}"


def decode(backend: Any, code: bytes, code_base: int, pc: int) -> Any | None:
    """The capstone instruction (with operand details) at ``pc`` in ``code``, or None."""
    offset = pc - code_base
    if not 0 <= offset < len(code):
        return None
    engine = capstone.Cs(backend.cs_arch, backend.cs_mode)
    engine.detail = True
    if backend.cs_arch == capstone.CS_ARCH_PPC:
        engine.syntax = capstone.CS_OPT_SYNTAX_NOREGNAME
    return next(engine.disasm(code[offset:offset + 16], pc, 1), None)


def text(instruction: Any | None) -> str:
    return f"{instruction.mnemonic} {instruction.op_str}".strip() if instruction is not None else ""


def s390x_access(instruction: Any, read_register: Callable[[int], int]) -> tuple[str, int, int] | None:
    """(access, address, size) of an s390x instruction's storage operand, or None.

    ``read_register(n)`` gives general register n; register 0 as a base or index means
    "none" (z/Architecture), which capstone reports as no register at all.
    """
    from capstone import sysz_const

    mnemonic = instruction.mnemonic
    if mnemonic in S390X_STORES:
        access, size = "write", S390X_STORES[mnemonic]
    elif mnemonic in S390X_READS:
        access, size = "read", S390X_READS[mnemonic]
    else:
        return None
    for operand in instruction.operands:
        if operand.type == sysz_const.SYSZ_OP_MEM:
            address = operand.mem.disp
            for register in (operand.mem.base, operand.mem.index):
                if register:
                    address += read_register(int(instruction.reg_name(register).lstrip("%r")))
            return access, address & ((1 << 64) - 1), size
    return None
