"""s390x machine code, encoded directly: a declarative table of instruction formats.

keystone mis-encodes every s390x branch to a label and evaluates ``.`` as 0
(DESIGN.md), so the backend encodes itself. As in ppci's riscv tokens, a format
is a list of named bit fields and an instruction is a format plus fixed field
values (z/Architecture Principles of Operation, chapter 5 "Instruction formats").
The shared backend checks decode every byte with capstone, which cross-checks
this table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from arches.direct import Label


@dataclass(frozen=True)
class Format:
    """An instruction format: named fields, most significant first, with their widths in bits."""

    name: str
    fields: tuple[tuple[str, int], ...]
    size: int = 0  # bytes, computed from the fields

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", sum(bits for _, bits in self.fields) // 8)

    def encode(self, values: dict[str, int]) -> bytes:
        word = 0
        for name, bits in self.fields:
            value = values.get(name, 0)
            if name in SIGNED_FIELDS:
                if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
                    raise ValueError(f"{self.name}: {name}={value} does not fit in {bits} signed bits")
                value &= (1 << bits) - 1
            elif not 0 <= value < (1 << bits):
                raise ValueError(f"{self.name}: {name}={value:#x} does not fit in {bits} bits")
            word = (word << bits) | value
        return word.to_bytes(self.size, "big")


SIGNED_FIELDS = {"i2", "dh2"}  # immediates and the high displacement byte are two's complement

RR = Format("RR", (("op", 8), ("r1", 4), ("r2", 4)))  # R1 <- R1 op R2 (32-bit)
RRE = Format("RRE", (("op", 16), ("zero", 8), ("r1", 4), ("r2", 4)))  # R1 <- R1 op R2
RI = Format("RI", (("op1", 8), ("r1", 4), ("op2", 4), ("i2", 16)))  # R1 op 16-bit immediate
RIL = Format("RIL", (("op1", 8), ("r1", 4), ("op2", 4), ("i2", 32)))  # R1 op 32-bit immediate / offset
RXY = Format("RXY", (("op1", 8), ("r1", 4), ("x2", 4), ("b2", 4), ("dl2", 12), ("dh2", 8), ("op2", 8)))
RSY = Format("RSY", (("op1", 8), ("r1", 4), ("r3", 4), ("b2", 4), ("dl2", 12), ("dh2", 8), ("op2", 8)))


@dataclass(frozen=True)
class Opcode:
    format: Format
    fixed: dict[str, int] = field(default_factory=dict)
    summary: str = ""


def _op(format_: Format, summary: str, **fixed: int) -> Opcode:
    return Opcode(format_, fixed, summary)


# The instructions the backend uses, by their assembler mnemonic.
OPCODES: dict[str, Opcode] = {
    # register-register, 64-bit (RRE) and 32-bit (RR)
    "lgr": _op(RRE, "R1 = R2", op=0xB904), "lcgr": _op(RRE, "R1 = -R2", op=0xB903),
    "agr": _op(RRE, "R1 += R2", op=0xB908), "sgr": _op(RRE, "R1 -= R2", op=0xB909),
    "msgr": _op(RRE, "R1 *= R2", op=0xB90C), "ngr": _op(RRE, "R1 &= R2", op=0xB980),
    "ogr": _op(RRE, "R1 |= R2", op=0xB981), "xgr": _op(RRE, "R1 ^= R2", op=0xB982),
    "ltgr": _op(RRE, "R1 = R2, set CC by sign", op=0xB902),
    "lgbr": _op(RRE, "R1 = (s8) R2", op=0xB906), "lghr": _op(RRE, "R1 = (s16) R2", op=0xB907),
    "lgfr": _op(RRE, "R1 = (s32) R2", op=0xB914), "llgfr": _op(RRE, "R1 = (u32) R2", op=0xB916),
    "llghr": _op(RRE, "R1 = (u16) R2", op=0xB985), "lrvgr": _op(RRE, "R1 = bswap64(R2)", op=0xB90F),
    "dlgr": _op(RRE, "R1:R1+1 / R2 -> rem R1, quot R1+1 (unsigned)", op=0xB987),
    "dsgr": _op(RRE, "R1+1 / R2 -> rem R1, quot R1+1 (signed)", op=0xB90D),
    "cgr": _op(RRE, "compare signed 64", op=0xB920), "clgr": _op(RRE, "compare logical 64", op=0xB921),
    "msr": _op(RRE, "R1 *= R2 (32-bit)", op=0xB252),
    "ar": _op(RR, "R1 += R2 (32-bit)", op=0x1A), "sr": _op(RR, "R1 -= R2 (32-bit)", op=0x1B),
    "nr": _op(RR, "R1 &= R2 (32-bit)", op=0x14), "or": _op(RR, "R1 |= R2 (32-bit)", op=0x16),
    "xr": _op(RR, "R1 ^= R2 (32-bit)", op=0x17), "lcr": _op(RR, "R1 = -R2 (32-bit)", op=0x13),
    "lr": _op(RR, "R1 = R2 (32-bit)", op=0x18),
    "cr": _op(RR, "compare signed 32", op=0x19), "clr": _op(RR, "compare logical 32", op=0x15),
    "bcr": _op(RR, "branch to R2 on mask R1", op=0x07),
    "basr": _op(RR, "R1 = return address; branch to R2", op=0x0D),
    # immediates
    "lghi": _op(RI, "R1 = (s16) I2", op1=0xA7, op2=0x9), "aghi": _op(RI, "R1 += (s16) I2", op1=0xA7, op2=0xB),
    "nill": _op(RI, "R1 bits 48-63 &= I2", op1=0xA5, op2=0x7),
    "lgfi": _op(RIL, "R1 = (s32) I2", op1=0xC0, op2=0x1), "llilf": _op(RIL, "R1 = (u32) I2", op1=0xC0, op2=0xF),
    "iihf": _op(RIL, "R1 bits 0-31 = I2", op1=0xC0, op2=0x8),
    "brcl": _op(RIL, "branch relative long on mask R1", op1=0xC0, op2=0x4),
    "brasl": _op(RIL, "R1 = return address; branch relative long", op1=0xC0, op2=0x5),
    # storage (RXY: 20-bit signed displacement)
    "lg": _op(RXY, "R1 = *(u64 *)", op1=0xE3, op2=0x04), "llgf": _op(RXY, "R1 = *(u32 *)", op1=0xE3, op2=0x16),
    "llgh": _op(RXY, "R1 = *(u16 *)", op1=0xE3, op2=0x91), "llgc": _op(RXY, "R1 = *(u8 *)", op1=0xE3, op2=0x90),
    "lgf": _op(RXY, "R1 = *(s32 *)", op1=0xE3, op2=0x14), "lgh": _op(RXY, "R1 = *(s16 *)", op1=0xE3, op2=0x15),
    "lgb": _op(RXY, "R1 = *(s8 *)", op1=0xE3, op2=0x77),
    "stg": _op(RXY, "*(u64 *) = R1", op1=0xE3, op2=0x24), "sty": _op(RXY, "*(u32 *) = R1", op1=0xE3, op2=0x50),
    "sthy": _op(RXY, "*(u16 *) = R1", op1=0xE3, op2=0x70), "stcy": _op(RXY, "*(u8 *) = R1", op1=0xE3, op2=0x72),
    # shifts (RSY: count = (B2 + D2) & 63) and compare-and-swap
    "sllg": _op(RSY, "R1 = R3 << n", op1=0xEB, op2=0x0D), "srlg": _op(RSY, "R1 = R3 >> n", op1=0xEB, op2=0x0C),
    "srag": _op(RSY, "R1 = (s64) R3 >> n", op1=0xEB, op2=0x0A),
    "sllk": _op(RSY, "R1 = R3 << n (32-bit)", op1=0xEB, op2=0xDF),
    "srlk": _op(RSY, "R1 = R3 >> n (32-bit)", op1=0xEB, op2=0xDE),
    "srak": _op(RSY, "R1 = (s32) R3 >> n (32-bit)", op1=0xEB, op2=0xDC),
    "csg": _op(RSY, "if *(u64 *) == R1 then store R3 else R1 = *", op1=0xEB, op2=0x30),
    "csy": _op(RSY, "if *(u32 *) == R1 then store R3 else R1 = *", op1=0xEB, op2=0x14),
    # save and restore a range of registers (the C ABI's prologue and epilogue)
    "stmg": _op(RSY, "store R1..R3 at the address", op1=0xEB, op2=0x24),
    "lmg": _op(RSY, "load R1..R3 from the address", op1=0xEB, op2=0x04),
}


class Encoded:
    """One s390x instruction: an opcode, its field values, and the label a relative branch goes to.

    Follows the ``arches.direct.Instruction`` protocol with a single form: the
    relative-long branches (``brcl``, ``brasl``) reach +-4 GiB, so nothing relaxes.
    """

    __slots__ = ("opcode", "values", "target", "text", "sizes", "encoded")

    def __init__(self, mnemonic: str, target: str | None, values: dict[str, int]) -> None:
        self.opcode = OPCODES[mnemonic]
        self.values = values
        self.target = target
        operands = ", ".join(f"{key}={value}" for key, value in values.items())
        self.text = f"{mnemonic} {operands}" + (f" -> {target}" if target else "")
        self.sizes = (self.opcode.format.size,)
        self.encoded: bytes | None = None  # a fixed instruction's bytes, once encoded

    def reaches(self, form: int, displacement: int) -> bool:
        return displacement % 2 == 0 and -(1 << 32) <= displacement < (1 << 32)  # RIL: signed halfwords

    def encode(self, form: int, displacement: int) -> bytes:
        if self.target is None:
            if self.encoded is None:
                self.encoded = self.opcode.format.encode(dict(self.opcode.fixed, **self.values))
            return self.encoded
        values = dict(self.opcode.fixed, **self.values)
        values["i2"] = displacement // 2  # halfwords
        return self.opcode.format.encode(values)


@lru_cache(maxsize=1 << 16)  # distinct instructions kept (a fuzzing session makes many)
def _shared(mnemonic: str, items: tuple[tuple[str, int], ...]) -> Encoded:
    """The one record of an unlabelled instruction (records are never changed)."""
    return Encoded(mnemonic, None, dict(items))


class Chunk(list):
    """The chunk a builder returns: Encoded instructions and labels, appended in order."""

    def emit(self, mnemonic: str, label: str | None = None, **values: int) -> None:
        """Append ``mnemonic`` with its field values; ``label``: the target of a relative branch.

        A record without a label is shared by every identical instruction (records are
        never changed), so its listing text is built once, however often it recurs.
        """
        if label is not None:
            self.append(Encoded(mnemonic, label, values))
            return
        self.append(_shared(mnemonic, tuple(values.items())))

    def label(self, name: str) -> None:
        self.append(Label(name))
