"""RV64 machine code, encoded directly: a declarative table of instruction formats.

keystone has no RISC-V (DESIGN.md), so the backend encodes itself. As in ppci's
``arch/riscv/tokens.py``, a format is a list of named bit fields and an
instruction is a format plus fixed field values. The formats are the base ISA's
R/I/S/B/U/J (RISC-V Unprivileged ISA manual, "Base Instruction Formats" and
"Immediate Encoding Variants"), plus the two shift-immediate variants of RV64I
and the A extension's AMO layout. The B and J immediates are scrambled over
several fields: a field that holds a slice of the immediate names the lowest
immediate bit it holds (``shift``), so the table, not code, says where each
bit goes.

Branch relaxation (arches/direct.py) gives every branch to a label up to three
forms: B-type reaches +-4 KiB, JAL +-1 MiB, AUIPC+JALR +-2 GiB (the manual's
"Control Transfer Instructions"). :func:`decode_operands` turns capstone's
decode of an instruction back into this table's operands, so the shared backend
checks can re-encode every instruction capstone decodes and compare the bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from arches.direct import Label

# ABI register names, x0-x31 (RISC-V psABI, "Integer Register Convention").
NAMES = ("zero ra sp gp tp t0 t1 t2 s0 s1 a0 a1 a2 a3 a4 a5 a6 a7 "
         "s2 s3 s4 s5 s6 s7 s8 s9 s10 s11 t3 t4 t5 t6").split()
NUMBERS = {name: number for number, name in enumerate(NAMES)} | {"fp": 8}
ZERO, RA, SP = 0, 1, 2
BRANCH_SCRATCH = NUMBERS["t6"]  # the far forms' AUIPC target: never an eBPF register


@dataclass(frozen=True)
class Field:
    """``width`` bits of the word; for a slice of the immediate, ``shift`` is its lowest bit."""

    name: str
    width: int
    shift: int = 0


@dataclass(frozen=True)
class Format:
    """An instruction format: fields most significant first, 32 bits in all.

    ``imm_bits``/``imm_signed``/``imm_align`` give the immediate's range as the
    assembler writes it (B and J offsets are multiples of 2); a format without
    an immediate has ``imm_bits`` 0.
    """

    name: str
    fields: tuple[Field, ...]
    imm_bits: int = 0
    imm_signed: bool = True
    imm_align: int = 1

    def __post_init__(self) -> None:
        assert sum(f.width for f in self.fields) == 32, self.name

    def check_immediate(self, value: int) -> None:
        low, high = ((-(1 << (self.imm_bits - 1)), 1 << (self.imm_bits - 1)) if self.imm_signed
                     else (0, 1 << self.imm_bits))
        if not low <= value < high or value % self.imm_align:
            raise ValueError(f"{self.name}: immediate {value:#x} out of range "
                             f"({'signed' if self.imm_signed else 'unsigned'} {self.imm_bits} bits"
                             f"{', even' if self.imm_align == 2 else ''})")

    def encode(self, values: dict[str, int]) -> bytes:
        if self.imm_bits:
            self.check_immediate(values.get("imm", 0))
        word = 0
        for item in self.fields:
            value = values.get(item.name, 0)
            if item.name == "imm":
                value = (value >> item.shift) & ((1 << item.width) - 1)
            elif not 0 <= value < (1 << item.width):
                raise ValueError(f"{self.name}: {item.name}={value:#x} does not fit in {item.width} bits")
            word = (word << item.width) | value
        return word.to_bytes(4, "little")


def _fields(*spec: tuple) -> tuple[Field, ...]:
    return tuple(Field(*item) for item in spec)


_RS2_RS1_F3_RD_OP = (("rs2", 5), ("rs1", 5), ("funct3", 3), ("rd", 5), ("opcode", 7))
# rd = rs1 op rs2
R = Format("R", _fields(("funct7", 7), *_RS2_RS1_F3_RD_OP))
# rd = rs1 op imm12; loads rd = *(rs1 + imm12); jalr
I = Format("I", _fields(("imm", 12, 0), ("rs1", 5), ("funct3", 3), ("rd", 5), ("opcode", 7)), 12)
# *(rs1 + imm12) = rs2
S = Format("S", _fields(("imm", 7, 5), ("rs2", 5), ("rs1", 5), ("funct3", 3), ("imm", 5, 0), ("opcode", 7)), 12)
# if rs1 cond rs2: pc += imm13 (even)
B = Format("B", _fields(("imm", 1, 12), ("imm", 6, 5), ("rs2", 5), ("rs1", 5), ("funct3", 3),
                        ("imm", 4, 1), ("imm", 1, 11), ("opcode", 7)), 13, True, 2)
# rd = imm20 << 12 (lui), pc + (imm20 << 12) (auipc); imm is the 20-bit upper immediate
U = Format("U", _fields(("imm", 20, 0), ("rd", 5), ("opcode", 7)), 20)
# rd = pc + 4; pc += imm21 (even)
J = Format("J", _fields(("imm", 1, 20), ("imm", 10, 1), ("imm", 1, 11), ("imm", 8, 12), ("rd", 5),
                        ("opcode", 7)), 21, True, 2)
# RV64I shifts by a 6-bit amount, and the *W ones by a 5-bit amount
I_SHIFT64 = Format("I-shift64", _fields(("funct6", 6), ("imm", 6, 0), ("rs1", 5), ("funct3", 3), ("rd", 5),
                                        ("opcode", 7)), 6, False)
I_SHIFT32 = Format("I-shift32", _fields(("funct7", 7), ("imm", 5, 0), ("rs1", 5), ("funct3", 3), ("rd", 5),
                                        ("opcode", 7)), 5, False)
# A extension: rd = *(rs1); *(rs1) = rd op rs2, with acquire/release bits
AMO = Format("AMO", _fields(("funct5", 5), ("aq", 1), ("rl", 1), *_RS2_RS1_F3_RD_OP))


@dataclass(frozen=True)
class Opcode:
    format: Format
    fixed: dict[str, int] = field(default_factory=dict)
    summary: str = ""


def _op(format_: Format, summary: str, **fixed: int) -> Opcode:
    return Opcode(format_, fixed, summary)


OP, OP_32, OP_IMM, OP_IMM_32 = 0x33, 0x3B, 0x13, 0x1B  # major opcodes (the manual's opcode map)
LOAD, STORE, BRANCH, JALR, JAL, LUI, AUIPC, AMO_OP = 0x03, 0x23, 0x63, 0x67, 0x6F, 0x37, 0x17, 0x2F

# The instructions the backend uses, by their assembler mnemonic (RV64I, M and A).
OPCODES: dict[str, Opcode] = {
    # register-register (R), 64-bit and the 32-bit *w forms that sign-extend their result
    **{name: _op(R, summary, opcode=OP, funct3=f3, funct7=f7) for name, f3, f7, summary in (
        ("add", 0, 0, "rd = rs1 + rs2"), ("sub", 0, 0x20, "rd = rs1 - rs2"),
        ("sll", 1, 0, "rd = rs1 << (rs2 & 63)"), ("slt", 2, 0, "rd = (s64) rs1 < (s64) rs2"),
        ("sltu", 3, 0, "rd = rs1 < rs2"), ("xor", 4, 0, "rd = rs1 ^ rs2"),
        ("srl", 5, 0, "rd = rs1 >> (rs2 & 63)"), ("sra", 5, 0x20, "rd = (s64) rs1 >> (rs2 & 63)"),
        ("or", 6, 0, "rd = rs1 | rs2"), ("and", 7, 0, "rd = rs1 & rs2"),
        ("mul", 0, 1, "rd = rs1 * rs2"), ("div", 4, 1, "rd = (s64) rs1 / (s64) rs2"),
        ("divu", 5, 1, "rd = rs1 / rs2"), ("rem", 6, 1, "rd = (s64) rs1 % (s64) rs2"),
        ("remu", 7, 1, "rd = rs1 % rs2"))},
    **{name: _op(R, summary, opcode=OP_32, funct3=f3, funct7=f7) for name, f3, f7, summary in (
        ("addw", 0, 0, "rd = (s32) (rs1 + rs2)"), ("subw", 0, 0x20, "rd = (s32) (rs1 - rs2)"),
        ("sllw", 1, 0, "rd = (s32) (rs1 << (rs2 & 31))"), ("srlw", 5, 0, "rd = (s32) ((u32) rs1 >> (rs2 & 31))"),
        ("sraw", 5, 0x20, "rd = (s32) rs1 >> (rs2 & 31)"), ("mulw", 0, 1, "rd = (s32) (rs1 * rs2)"),
        ("divw", 4, 1, "rd = (s32) rs1 / (s32) rs2"), ("divuw", 5, 1, "rd = (s32) ((u32) rs1 / (u32) rs2)"),
        ("remw", 6, 1, "rd = (s32) rs1 % (s32) rs2"), ("remuw", 7, 1, "rd = (s32) ((u32) rs1 % (u32) rs2)"))},
    # register-immediate (I)
    **{name: _op(I, summary, opcode=OP_IMM, funct3=f3) for name, f3, summary in (
        ("addi", 0, "rd = rs1 + imm"), ("slti", 2, "rd = (s64) rs1 < imm"), ("sltiu", 3, "rd = rs1 < (u64) imm"),
        ("xori", 4, "rd = rs1 ^ imm"), ("ori", 6, "rd = rs1 | imm"), ("andi", 7, "rd = rs1 & imm"))},
    "addiw": _op(I, "rd = (s32) (rs1 + imm)", opcode=OP_IMM_32, funct3=0),
    "slli": _op(I_SHIFT64, "rd = rs1 << imm", opcode=OP_IMM, funct3=1, funct6=0),
    "srli": _op(I_SHIFT64, "rd = rs1 >> imm", opcode=OP_IMM, funct3=5, funct6=0),
    "srai": _op(I_SHIFT64, "rd = (s64) rs1 >> imm", opcode=OP_IMM, funct3=5, funct6=0x10),
    "slliw": _op(I_SHIFT32, "rd = (s32) (rs1 << imm)", opcode=OP_IMM_32, funct3=1, funct7=0),
    "srliw": _op(I_SHIFT32, "rd = (s32) ((u32) rs1 >> imm)", opcode=OP_IMM_32, funct3=5, funct7=0),
    "sraiw": _op(I_SHIFT32, "rd = (s32) rs1 >> imm", opcode=OP_IMM_32, funct3=5, funct7=0x20),
    # upper immediates
    "lui": _op(U, "rd = (s32) (imm << 12)", opcode=LUI),
    "auipc": _op(U, "rd = pc + (s32) (imm << 12)", opcode=AUIPC),
    # loads and stores
    **{name: _op(I, f"rd = *({kind} *)(rs1 + imm)", opcode=LOAD, funct3=f3) for name, f3, kind in (
        ("lb", 0, "s8"), ("lh", 1, "s16"), ("lw", 2, "s32"), ("ld", 3, "u64"),
        ("lbu", 4, "u8"), ("lhu", 5, "u16"), ("lwu", 6, "u32"))},
    **{name: _op(S, f"*({kind} *)(rs1 + imm) = rs2", opcode=STORE, funct3=f3) for name, f3, kind in (
        ("sb", 0, "u8"), ("sh", 1, "u16"), ("sw", 2, "u32"), ("sd", 3, "u64"))},
    # control transfer
    **{name: _op(B, f"if rs1 {cond} rs2: pc += imm", opcode=BRANCH, funct3=f3) for name, f3, cond in (
        ("beq", 0, "=="), ("bne", 1, "!="), ("blt", 4, "<s"), ("bge", 5, ">=s"),
        ("bltu", 6, "<u"), ("bgeu", 7, ">=u"))},
    "jal": _op(J, "rd = pc + 4; pc += imm", opcode=JAL),
    "jalr": _op(I, "rd = pc + 4; pc = (rs1 + imm) & ~1", opcode=JALR, funct3=0),
    # A extension: LR/SC and AMOs, word (.w, sign-extending rd) and doubleword (.d)
    **{f"{name}.{suffix}": _op(AMO, summary, opcode=AMO_OP, funct3=f3, funct5=f5)
       for suffix, f3 in (("w", 2), ("d", 3)) for name, f5, summary in (
        ("lr", 0x02, "rd = *(rs1); reserve"), ("sc", 0x03, "if reserved: *(rs1) = rs2, rd = 0; else rd = 1"),
        ("amoadd", 0x00, "rd = *(rs1); *(rs1) += rs2"), ("amoswap", 0x01, "rd = *(rs1); *(rs1) = rs2"),
        ("amoxor", 0x04, "rd = *(rs1); *(rs1) ^= rs2"), ("amoor", 0x08, "rd = *(rs1); *(rs1) |= rs2"),
        ("amoand", 0x0C, "rd = *(rs1); *(rs1) &= rs2"))},
}

# How each format's operands are written (assembler order), for listings and decoding.
OPERANDS: dict[str, tuple[str, ...]] = {
    "R": ("rd", "rs1", "rs2"), "I": ("rd", "rs1", "imm"), "S": ("rs2", "rs1", "imm"),
    "B": ("rs1", "rs2", "imm"), "U": ("rd", "imm"), "J": ("rd", "imm"),
    "I-shift64": ("rd", "rs1", "imm"), "I-shift32": ("rd", "rs1", "imm"), "AMO": ("rd", "rs2", "rs1"),
}
_MEMORY_FORM = {LOAD: "load", STORE: "store"}  # written "rd, imm(rs1)" / "rs2, imm(rs1)"


def encode(mnemonic: str, **values: int) -> bytes:
    """The 4 bytes of ``mnemonic`` with its operand values (``aq``/``rl`` for AMOs)."""
    opcode = OPCODES[mnemonic]
    return opcode.format.encode(dict(opcode.fixed, **values))


def text(mnemonic: str, values: dict[str, int]) -> str:
    """Assembler text in the manual's syntax, e.g. ``ld a0, 8(sp)`` or ``amoadd.d.aqrl a5, a1, (a0)``."""
    opcode = OPCODES[mnemonic]
    kind = _MEMORY_FORM.get(opcode.fixed.get("opcode", 0))
    name = lambda key: NAMES[values.get(key, 0)]  # noqa: E731
    if kind == "load":
        return f"{mnemonic} {name('rd')}, {values.get('imm', 0)}({name('rs1')})"
    if kind == "store":
        return f"{mnemonic} {name('rs2')}, {values.get('imm', 0)}({name('rs1')})"
    if opcode.format is AMO:
        order = ".aqrl" if values.get("aq") and values.get("rl") else ".aq" if values.get("aq") else \
            ".rl" if values.get("rl") else ""
        operands = [name("rd")] + ([] if mnemonic.startswith("lr.") else [name("rs2")]) + [f"({name('rs1')})"]
        return f"{mnemonic}{order} {', '.join(operands)}"
    parts = [str(values.get(key, 0)) if key == "imm" else name(key) for key in OPERANDS[opcode.format.name]]
    return f"{mnemonic} {', '.join(parts)}"


# --- instruction records for arches/direct.py -----------------------------------------------

class Encoded:
    """One fixed RV64 instruction (the ``arches.direct.Instruction`` protocol, one form).

    Immutable: :meth:`Chunk.emit` shares one record per distinct instruction,
    so each is encoded and listed once however often a program repeats it.
    """

    __slots__ = ("mnemonic", "values", "text", "_bytes")
    target = None
    sizes = (4,)

    def __init__(self, mnemonic: str, values: dict[str, int]) -> None:
        self.mnemonic, self.values = mnemonic, values
        self._bytes = encode(mnemonic, **values)  # range errors surface where the builder emits
        self.text = text(mnemonic, values)

    def reaches(self, form: int, displacement: int) -> bool:
        return True

    def encode(self, form: int, displacement: int) -> bytes:
        return self._bytes


@lru_cache(maxsize=1 << 16)  # distinct instructions kept (a fuzzing session makes many)
def _shared(mnemonic: str, items: tuple[tuple[str, int], ...]) -> Encoded:
    """The one record of an instruction: identical instructions share it (records are never changed)."""
    return Encoded(mnemonic, dict(items))


def _far_parts(displacement: int) -> tuple[int, int]:
    """AUIPC's upper 20 bits and JALR's low 12 for a pc-relative ``displacement`` (low part sign-extends)."""
    upper = (displacement + 0x800) >> 12
    return upper, displacement - (upper << 12)


def _reaches_jal(displacement: int) -> bool:
    return -(1 << 20) <= displacement < (1 << 20)


def _reaches_auipc(displacement: int) -> bool:
    return -(1 << 31) - 0x800 <= displacement < (1 << 31) - 0x800


INVERSE = {"beq": "bne", "bne": "beq", "blt": "bge", "bge": "blt", "bltu": "bgeu", "bgeu": "bltu"}


class Branch:
    """``if rs1 cond rs2 goto target``, relaxed by arches/direct.py through three forms:

    0. B-type (+-4 KiB);
    1. the inverted branch over a ``jal zero`` (+-1 MiB from the jal);
    2. the inverted branch over ``auipc t6; jalr zero, t6`` (+-2 GiB from the auipc).
    """

    __slots__ = ("mnemonic", "rs1", "rs2", "target", "text")
    sizes = (4, 8, 12)

    def __init__(self, mnemonic: str, rs1: int, rs2: int, target: str) -> None:
        self.mnemonic, self.rs1, self.rs2, self.target = mnemonic, rs1, rs2, target
        self.text = f"{mnemonic} {NAMES[rs1]}, {NAMES[rs2]} -> {target}"

    def reaches(self, form: int, displacement: int) -> bool:
        if form == 0:
            return -(1 << 12) <= displacement < (1 << 12)
        return (_reaches_jal if form == 1 else _reaches_auipc)(displacement - 4)

    def encode(self, form: int, displacement: int) -> bytes:
        if form == 0:
            return encode(self.mnemonic, rs1=self.rs1, rs2=self.rs2, imm=displacement)
        skip = encode(INVERSE[self.mnemonic], rs1=self.rs1, rs2=self.rs2, imm=self.sizes[form])
        return skip + Jump.far(ZERO, form - 1, displacement - 4)


class Jump:
    """``goto target`` (``link`` = zero) or a call (``link`` = ra), in two forms:

    0. ``jal link`` (+-1 MiB);
    1. ``auipc; jalr link`` (+-2 GiB): the auipc writes ra for a call, t6 for a jump.
    """

    __slots__ = ("link", "target", "text")
    sizes = (4, 8)

    def __init__(self, link: int, target: str) -> None:
        self.link, self.target = link, target
        self.text = f"jal {NAMES[link]} -> {target}"

    def reaches(self, form: int, displacement: int) -> bool:
        return (_reaches_jal if form == 0 else _reaches_auipc)(displacement)

    def encode(self, form: int, displacement: int) -> bytes:
        return self.far(self.link, form, displacement)

    @staticmethod
    def far(link: int, form: int, displacement: int) -> bytes:
        if form == 0:
            return encode("jal", rd=link, imm=displacement)
        base = link if link != ZERO else BRANCH_SCRATCH
        upper, lower = _far_parts(displacement)
        return encode("auipc", rd=base, imm=upper) + encode("jalr", rd=link, rs1=base, imm=lower)


class Chunk(list):
    """The chunk a builder returns: instructions, branches and labels, in order."""

    def emit(self, mnemonic: str, **values: int) -> None:
        """Append ``mnemonic`` with its operands (register numbers, ``imm``, ``aq``/``rl``)."""
        self.append(_shared(mnemonic, tuple(values.items())))

    def branch(self, mnemonic: str, rs1: int, rs2: int, target: str) -> None:
        self.append(Branch(mnemonic, rs1, rs2, target))

    def jump(self, target: str, link: int = ZERO) -> None:
        self.append(Jump(link, target))

    def label(self, name: str) -> None:
        self.append(Label(name))


# --- capstone's decode back to this table (the round-trip check) ------------------------------

# capstone 5 prints LLVM's aliases and leaves their implied operands out of the
# detail: alias -> the operands it implies (measured with capstone 5.0.6).
_ALIAS_IMPLIED: dict[str, dict[str, int]] = {
    "nop": {"rd": ZERO, "rs1": ZERO, "imm": 0}, "mv": {"imm": 0}, "sext.w": {"imm": 0},
    "not": {"imm": -1}, "seqz": {"imm": 1}, "li": {"rs1": ZERO},
    "neg": {"rs1": ZERO}, "negw": {"rs1": ZERO}, "snez": {"rs1": ZERO},
    "sltz": {"rs2": ZERO}, "sgtz": {"rs1": ZERO},
    "beqz": {"rs2": ZERO}, "bnez": {"rs2": ZERO}, "bgez": {"rs2": ZERO}, "bltz": {"rs2": ZERO},
    "blez": {"rs1": ZERO}, "bgtz": {"rs1": ZERO},
    "j": {"rd": ZERO}, "jal": {"rd": RA}, "ret": {"rd": ZERO, "rs1": RA, "imm": 0},
    "jr": {"rd": ZERO, "imm": 0}, "jalr": {"rd": RA, "imm": 0},
}
# aliases that write their operands in another order than the instruction
_ALIAS_ORDER = {"blez": ("rs2", "imm"), "bgtz": ("rs2", "imm"), "sgtz": ("rd", "rs2"),
                "neg": ("rd", "rs2"), "negw": ("rd", "rs2"), "snez": ("rd", "rs2"), "jr": ("rs1",),
                "jalr": ("rs1",), "bgt": ("rs2", "rs1", "imm"), "ble": ("rs2", "rs1", "imm"),
                "bgtu": ("rs2", "rs1", "imm"), "bleu": ("rs2", "rs1", "imm")}


def decode_operands(name: str, alias: str, operands: list[tuple[str, Any]]) -> tuple[str, dict[str, int]]:
    """(mnemonic, operand values) of an instruction capstone decoded, for :func:`encode`.

    ``name`` is capstone's instruction name (``addi``, ``amoadd.d.aqrl``),
    ``alias`` the mnemonic it printed (``mv``), ``operands`` its detail as
    ("reg", name) / ("imm", value) / ("mem", base name, displacement) in order.
    Raises KeyError for an instruction or alias this table does not know.
    """
    mnemonic, values = name, {}
    for suffix, bits in ((".aqrl", (1, 1)), (".aq", (1, 0)), (".rl", (0, 1))):
        if mnemonic.endswith(suffix):
            mnemonic = mnemonic[: -len(suffix)]
            values["aq"], values["rl"] = bits
            break
    opcode = OPCODES[mnemonic]
    flat: list[int] = []
    for operand in operands:
        if operand[0] == "mem":
            values["rs1"] = NUMBERS[operand[1]]
            flat.append(operand[2])
        else:
            flat.append(NUMBERS[operand[1]] if operand[0] == "reg" else operand[1])
    if alias != name and alias not in _ALIAS_IMPLIED and alias not in _ALIAS_ORDER:
        raise KeyError(f"capstone alias {alias!r} of {name}")
    kind = _MEMORY_FORM.get(opcode.fixed.get("opcode", 0))
    if kind:
        full: tuple[str, ...] = ("rd" if kind == "load" else "rs2", "imm")
    elif opcode.format is AMO:
        full = ("rd", "rs1") if mnemonic.startswith("lr.") else ("rd", "rs2", "rs1")
    else:
        full = OPERANDS[opcode.format.name]
    implied = _ALIAS_IMPLIED.get(alias, {})
    candidates = [_ALIAS_ORDER.get(alias), full, tuple(key for key in full if key not in implied)]
    order = next((c for c in candidates if c is not None and len(c) == len(flat)), None)
    if order is None:
        raise KeyError(f"{alias}: {len(flat)} operands, expected {full}")
    if order is not full:
        values.update(implied)
    values.update(zip(order, flat))
    if opcode.format is U and values.get("imm", 0) >= 1 << 19:
        values["imm"] -= 1 << 20  # capstone prints the upper immediate unsigned
    return mnemonic, values
