"""The eBPF instruction set (RFC 9669): opcode constants, the instruction record,
and the 8-byte little-endian wire format.

A program is a list of 8-byte *slots*. ``lddw`` takes two slots: the first holds
the opcode and the low 32 bits of the immediate, the second (opcode 0) the high
32 bits. Slots are kept as decoded so that re-encoding is byte-identical and jump
offsets (which count slots) keep their meaning.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

# Instruction classes (RFC 9669 section 3.3: the 3 low bits of the opcode).
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
CLASS_NAMES = ("ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64")

# Source bit for arithmetic and jump instructions (section 4).
K = 0x00  # use the 32-bit immediate
X = 0x08  # use the src register

# Arithmetic operations (section 4.1): the 4 high bits of the opcode.
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
NEG, MOD, XOR, MOV, ARSH, END = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
ALU_OPS = {ADD: "add", SUB: "sub", MUL: "mul", DIV: "div", OR: "or", AND: "and",
           LSH: "lsh", RSH: "rsh", NEG: "neg", MOD: "mod", XOR: "xor", MOV: "mov",
           ARSH: "arsh"}
# Byte swap direction (section 4.2) lives in the source bit of END.
TO_LE, TO_BE = 0x00, 0x08

# Jump operations (section 4.3).
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
CALL, EXIT, JLT, JLE, JSLT, JSLE = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
JMP_CONDS = {JEQ: "jeq", JGT: "jgt", JGE: "jge", JSET: "jset", JNE: "jne",
             JSGT: "jsgt", JSGE: "jsge", JLT: "jlt", JLE: "jle", JSLT: "jslt",
             JSLE: "jsle"}
# CALL src field (section 4.3.1).
CALL_HELPER, CALL_LOCAL, CALL_BTF = 0, 1, 2

# Load/store size (section 5) and mode.
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {W: 4, H: 2, B: 1, DW: 8}
SIZE_SUFFIX = {W: "w", H: "h", B: "b", DW: "dw"}
IMM, ABS, IND, MEM, MEMSX, ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0

# Atomic operations (section 5.3), carried in the immediate.
ATOMIC_FETCH = 0x01
ATOMIC_XCHG = 0xE0 | ATOMIC_FETCH
ATOMIC_CMPXCHG = 0xF0 | ATOMIC_FETCH
ATOMIC_OPS = {ADD: "add", OR: "or", AND: "and", XOR: "xor"}
ATOMIC_IMMS = frozenset([ADD, OR, AND, XOR, ADD | ATOMIC_FETCH, OR | ATOMIC_FETCH,
                         AND | ATOMIC_FETCH, XOR | ATOMIC_FETCH, ATOMIC_XCHG,
                         ATOMIC_CMPXCHG])

# 64-bit immediate load (section 5.4): opcode and the src values (pseudo sources).
LDDW = LD | IMM | DW  # 0x18
LDDW_PLAIN, LDDW_MAP_FD = 0, 1

REG_COUNT = 11  # r0..r10
FRAME_POINTER = 10  # r10 is read-only


def cls(opcode: int) -> int:
    """Instruction class (the low 3 bits)."""
    return opcode & 0x07


def is_alu(opcode: int) -> bool:
    return cls(opcode) in (ALU, ALU64)


def is_jump(opcode: int) -> bool:
    return cls(opcode) in (JMP, JMP32)


@dataclass(frozen=True)
class Insn:
    """One 8-byte instruction slot, fields as in RFC 9669 section 3.

    ``imm`` is the signed 32-bit immediate and ``off`` the signed 16-bit offset.
    """

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        """The little-endian wire form (RFC 9669 section 3.1, 'little-endian host')."""
        return struct.pack("<BBhi", self.opcode, (self.src << 4) | self.dst,
                           self.off, self.imm)

    @classmethod
    def decode(cls, raw: bytes) -> "Insn":
        opcode, regs, off, imm = struct.unpack("<BBhi", raw)
        return cls(opcode, regs & 0x0F, regs >> 4, off, imm)

    # Convenience views used by the interpreter, the validator and the backends.
    @property
    def klass(self) -> int:
        return self.opcode & 0x07

    @property
    def op(self) -> int:
        """Operation bits of an ALU or jump opcode (the high 4 bits)."""
        return self.opcode & 0xF0

    @property
    def source(self) -> int:
        """K or X for ALU/jump opcodes."""
        return self.opcode & 0x08

    @property
    def size(self) -> int:
        """Size bits of a load/store opcode."""
        return self.opcode & 0x18

    @property
    def mode(self) -> int:
        """Mode bits of a load/store opcode."""
        return self.opcode & 0xE0

    @property
    def nbytes(self) -> int:
        return SIZE_BYTES[self.size]


@dataclass(frozen=True)
class Program:
    """A decoded eBPF program: its slots in order."""

    insns: tuple[Insn, ...]

    def __len__(self) -> int:
        return len(self.insns)

    def encode(self) -> bytes:
        return b"".join(insn.encode() for insn in self.insns)

    @classmethod
    def decode(cls, raw: bytes) -> "Program":
        if len(raw) % 8:
            raise ValueError(f"program length {len(raw)} is not a multiple of 8 bytes")
        return cls(tuple(Insn.decode(raw[i:i + 8]) for i in range(0, len(raw), 8)))

    def lddw_value(self, index: int) -> int:
        """The unsigned 64-bit immediate of the lddw whose first slot is ``index``."""
        low = self.insns[index].imm & 0xFFFFFFFF
        high = self.insns[index + 1].imm & 0xFFFFFFFF
        return (high << 32) | low

    def instruction_starts(self) -> list[int]:
        """Indices of the slots that start an instruction (skips lddw second halves)."""
        cached = self.__dict__.get("_starts")
        if cached is None:  # computed once: every stage of the pipeline asks
            cached = []
            index = 0
            while index < len(self.insns):
                cached.append(index)
                index += 2 if self.insns[index].opcode == LDDW else 1
            self.__dict__["_starts"] = cached
        return list(cached)


def jump_target(insn: Insn, index: int) -> int | None:
    """The slot a jump or local call at ``index`` goes to; None for other instructions."""
    if insn.klass == JMP32 and insn.op == JA:
        return index + insn.imm + 1  # gotol: the offset is in imm
    if insn.klass in (JMP, JMP32) and insn.op not in (EXIT, CALL):
        return index + insn.off + 1
    if insn.klass == JMP and insn.op == CALL and insn.src == CALL_LOCAL:
        return index + insn.imm + 1
    return None


def lddw_pair(dst: int, value: int, src: int = LDDW_PLAIN) -> tuple[Insn, Insn]:
    """The two slots of ``lddw dst, value``."""
    value &= (1 << 64) - 1
    return (Insn(LDDW, dst, src, 0, to_s32(value & 0xFFFFFFFF)),
            Insn(0, 0, 0, 0, to_s32(value >> 32)))


def to_s32(value: int) -> int:
    """Reinterpret the low 32 bits of ``value`` as a signed integer."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def to_s64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


def sign_extend(value: int, bits: int) -> int:
    """Sign-extend the low ``bits`` of ``value`` (result is a Python int)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# ---------------------------------------------------------------------------
# The opcode table: every valid opcode (with the field values that select a
# variant), its RFC 9669 conformance group and the ISA version that added it.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class OpcodeInfo:
    """What the ISA says about one instruction form.

    ``key`` distinguishes forms that share an opcode byte: the offset for
    sdiv/smod and movsx, the immediate for byte swaps and atomics, the src for calls.
    """

    key: tuple[int, int]  # (opcode, variant)
    mnemonic: str
    group: str  # RFC 9669 conformance group
    version: int  # eBPF ISA version (v1..v4) that introduced it


def _build_opcode_table() -> dict[tuple[int, int], OpcodeInfo]:
    table: dict[tuple[int, int], OpcodeInfo] = {}

    def add(opcode: int, variant: int, mnemonic: str, group: str, version: int) -> None:
        table[(opcode, variant)] = OpcodeInfo((opcode, variant), mnemonic, group, version)

    for klass, suffix, width in ((ALU, "32", 32), (ALU64, "", 64)):
        base = "base32" if width == 32 else "base64"
        divmul = "divmul32" if width == 32 else "divmul64"
        for op, name in ALU_OPS.items():
            sources = (K,) if op == NEG else (K, X)
            for source in sources:
                opcode = klass | op | source
                group = divmul if op in (MUL, DIV, MOD) else base
                if opcode == ALU64 | NEG:
                    group = "base32"  # as the IANA opcode registry of RFC 9669 lists 0x87
                add(opcode, 0, name + suffix, group, 1)
                if op in (DIV, MOD):
                    add(opcode, 1, "s" + name + suffix, divmul, 4)
                if op == MOV and source == X:
                    for bits in ((8, 16) if width == 32 else (8, 16, 32)):
                        add(opcode, bits, f"movsx{bits}{width}", base, 4)
        # Byte swaps: le/be (ALU class) and bswap (ALU64 class); the variant is the width.
        for bits in (16, 32, 64):
            swap_group = "base64" if bits == 64 else "base32"
            if klass == ALU:
                add(ALU | END | TO_LE, bits, f"le{bits}", swap_group, 1)
                add(ALU | END | TO_BE, bits, f"be{bits}", swap_group, 1)
            else:
                add(ALU64 | END | TO_LE, bits, f"bswap{bits}", swap_group, 4)

    for klass, suffix, group in ((JMP, "", "base64"), (JMP32, "32", "base32")):
        version = 1 if klass == JMP else 3
        for op, name in JMP_CONDS.items():
            for source in (K, X):
                this_version = 2 if op in (JLT, JLE, JSLT, JSLE) and klass == JMP else version
                add(klass | op | source, 0, name + suffix, group, this_version)
    add(JMP | JA, 0, "ja", "base32", 1)
    add(JMP32 | JA, 0, "gotol", "base32", 4)
    add(JMP | CALL, CALL_HELPER, "call", "base32", 1)
    add(JMP | CALL, CALL_LOCAL, "call local", "base32", 1)
    add(JMP | EXIT, 0, "exit", "base32", 1)

    for size, suffix in SIZE_SUFFIX.items():
        group = "base64" if size == DW else "base32"
        add(LDX | MEM | size, 0, "ldx" + suffix, group, 1)
        add(ST | MEM | size, 0, "st" + suffix, group, 1)
        add(STX | MEM | size, 0, "stx" + suffix, group, 1)
        if size != DW:
            add(LDX | MEMSX | size, 0, "ldxs" + suffix, group, 4)
            add(LD | ABS | size, 0, "ldabs" + suffix, "packet", 1)
            add(LD | IND | size, 0, "ldind" + suffix, "packet", 1)
    add(LDDW, LDDW_PLAIN, "lddw", "base64", 1)
    add(LDDW, LDDW_MAP_FD, "lddw map", "base64", 1)

    for size, group in ((W, "atomic32"), (DW, "atomic64")):
        opcode = STX | ATOMIC | size
        width = "32" if size == W else ""
        for imm in sorted(ATOMIC_IMMS):
            if imm == ATOMIC_XCHG:
                name = "xchg"
            elif imm == ATOMIC_CMPXCHG:
                name = "cmpxchg"
            else:
                name = ("fetch " if imm & ATOMIC_FETCH else "") + ATOMIC_OPS[imm & 0xF0]
            version = 1 if imm == ADD else 3
            add(opcode, imm, f"lock {name}{width}", group, version)
    return table


OPCODES: dict[tuple[int, int], OpcodeInfo] = _build_opcode_table()


def opcode_key(insn: Insn) -> tuple[int, int]:
    """The key of ``insn`` in :data:`OPCODES` (it may be absent if ``insn`` is invalid)."""
    opcode = insn.opcode
    klass = opcode & 0x07
    if klass in (ALU, ALU64):
        op = opcode & 0xF0
        if op in (DIV, MOD):
            return (opcode, insn.off)
        if op == MOV and opcode & X:
            return (opcode, insn.off)
        if op == END:
            return (opcode, insn.imm)
        return (opcode, 0)
    if klass == STX and opcode & 0xE0 == ATOMIC:
        return (opcode, insn.imm)
    if opcode in (JMP | CALL, LDDW):
        return (opcode, insn.src)
    return (opcode, 0)


def describe(insn: Insn) -> OpcodeInfo | None:
    """The ISA's entry for ``insn`` or None when no such instruction exists."""
    return OPCODES.get(opcode_key(insn))
