"""What the native mutation operators need to know about each target's code.

A :class:`Dialect` says, for one architecture, which tokens of its assembly text
(or which fields of its instruction records) are registers and of which class,
which mnemonics test a condition and what the mistaken conditions are (the
inverse, signed for unsigned, strict for non-strict), which mnemonics come in
narrower and wider forms (32/64-bit operations, load and store sizes), and which
instructions are zero- or sign-extensions. :mod:`harness.tools.native_ops` applies
the operators with these tables; nothing here runs code.

The facts come from each ISA's manual (register files, condition encodings) and
from the mnemonics the backends in ``arches/`` emit for the corpus.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# --- condition algebra shared by flag-based ISAs ------------------------------------------------
# ARM-style names: eq ne, unsigned hi hs lo ls, signed gt ge lt le (Arm ARM "Condition codes").
_ARM_INVERSE = {"eq": "ne", "ne": "eq", "hi": "ls", "ls": "hi", "hs": "lo", "lo": "hs",
                "gt": "le", "le": "gt", "ge": "lt", "lt": "ge", "mi": "pl", "pl": "mi",
                "cs": "cc", "cc": "cs"}
_ARM_SIGNEDNESS = {"hi": "gt", "gt": "hi", "hs": "ge", "ge": "hs", "lo": "lt", "lt": "lo", "ls": "le",
                   "le": "ls", "cs": "ge", "cc": "lt"}
_ARM_STRICTNESS = {"hi": "hs", "hs": "hi", "lo": "ls", "ls": "lo", "gt": "ge", "ge": "gt", "lt": "le",
                   "le": "lt", "cs": "hi", "cc": "ls"}


def _alternatives(condition: str) -> list[str]:
    """The mistaken conditions for ``condition``: inverse, other signedness, other strictness."""
    found = [table[condition] for table in (_ARM_INVERSE, _ARM_SIGNEDNESS, _ARM_STRICTNESS)
             if condition in table]
    return list(dict.fromkeys(found))


def _condition_family(prefix: str, names: dict[str, str], suffix: str = "") -> dict[str, list[str]]:
    """mnemonic -> mistaken mnemonics, for branches spelled prefix + name (ARM condition -> name)."""
    spelled = {arm: f"{prefix}{name}{suffix}" for arm, name in names.items()}
    return {spelled[arm]: [spelled[other] for other in _alternatives(arm) if other in spelled]
            for arm in spelled}


def _size_family(*chains: tuple[str, ...]) -> dict[str, list[str]]:
    """Each mnemonic of a chain (narrowest first) -> its neighbours (one step narrower / wider)."""
    result: dict[str, list[str]] = {}
    for chain in chains:
        for index, name in enumerate(chain):
            result.setdefault(name, []).extend(
                other for other in (chain[index - 1] if index else None,
                                    chain[index + 1] if index + 1 < len(chain) else None) if other)
    return result


def _pairs(*pairs: tuple[str, str]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for a, b in pairs:
        result.setdefault(a, []).append(b)
        result.setdefault(b, []).append(a)
    return result


@dataclass
class Dialect:
    """One target's mutation tables (see the module docstring)."""

    arch: str
    register_class: dict[str, str]  # register name -> class (replacements stay in the class)
    conditions: dict[str, list[str]]  # mnemonic -> mistaken mnemonics (condition flips)
    sizes: dict[str, list[str]]  # mnemonic -> narrower / wider mnemonics
    register_width: dict[str, str] = field(default_factory=dict)  # register -> its other-width name
    operand_words: dict[str, str] = field(default_factory=dict)  # operand word -> other width (ptr sizes, %xcc)
    numeric_registers: bool = False  # ppc64: registers are bare numbers
    immediate_tail: dict[str, int] = field(default_factory=dict)  # ppc64: trailing immediate operands
    replacement_exclude: frozenset[str] = frozenset()  # never chosen as a replacement (stack pointers)
    family: dict[str, str] = field(default_factory=dict)  # register -> one name for all its widths (eax: rax)

    def identity(self, register: str) -> str:
        """One name for a register whatever width the text uses (eax and rax are one register)."""
        return self.family.get(register, register)

    def registers_of(self, klass: str) -> list[str]:
        return [name for name, other in self.register_class.items()
                if other == klass and name not in self.replacement_exclude]


# --- x86 (Intel syntax, keystone) ---------------------------------------------------------------
_X86_64 = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + [f"r{n}" for n in range(8, 16)]
_X86_32 = ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp"] + [f"r{n}d" for n in range(8, 16)]
_X86_16 = ["ax", "bx", "cx", "dx", "si", "di", "bp", "sp"] + [f"r{n}w" for n in range(8, 16)]
_X86_8 = ["al", "bl", "cl", "dl", "sil", "dil", "bpl", "spl"] + [f"r{n}b" for n in range(8, 16)]
# x86 condition codes (Intel SDM vol. 2, "Jcc"): ARM name -> the x86 suffix
_X86_CONDITIONS = {"eq": "e", "ne": "ne", "hi": "a", "hs": "ae", "lo": "b", "ls": "be", "gt": "g",
                   "ge": "ge", "lt": "l", "le": "le", "mi": "s", "pl": "ns"}
_X86_JCC = {**_condition_family("j", _X86_CONDITIONS), "jz": ["jnz"], "jnz": ["jz"]}
_X86_CARRY = _pairs(("adc", "add"), ("sbb", "sub"))  # a carry chain broken: the high half loses the carry
_X86_SIZES = _size_family(("movzx", "mov"), ("shld", "shl"), ("shrd", "shr"))
_PTR_WORDS = {"qword": "dword", "dword": "word", "word": "byte", "byte": "word"}


def _x86(arch: str, widths: list[list[str]]) -> Dialect:
    classes = {name: f"gpr{bits}" for names, bits in zip(widths, (64, 32, 16, 8)[4 - len(widths):])
               for name in names}
    pairs = {}
    for wide, narrow in zip(widths, widths[1:]):
        for a, b in zip(wide, narrow):
            pairs.setdefault(a, b)
            pairs.setdefault(b, a)
    family = {name: names[0] for names in zip(*widths) for name in names}
    return Dialect(arch, classes, {**_X86_JCC, **_X86_CARRY}, _X86_SIZES, pairs, dict(_PTR_WORDS),
                   replacement_exclude=frozenset({"rsp", "esp", "sp", "spl"}), family=family)


# --- arm64 -------------------------------------------------------------------------------------------
_ARM64_CONDITIONS = {name: name for name in ("eq", "ne", "hi", "hs", "lo", "ls", "gt", "ge", "lt", "le")}
ARM64 = Dialect(
    "arm64",
    {**{f"x{n}": "x" for n in range(31)}, **{f"w{n}": "w" for n in range(31)}, "sp": "sp",
     "xzr": "x", "wzr": "w"},
    {**_condition_family("b.", _ARM64_CONDITIONS), "cbz": ["cbnz"], "cbnz": ["cbz"],
     "udiv": ["sdiv"], "sdiv": ["udiv"], "lsr": ["asr"], "asr": ["lsr"]},
    _size_family(("ldurb", "ldurh", "ldur"), ("ldrb", "ldrh", "ldr"), ("sturb", "sturh", "stur"),
                 ("strb", "strh", "str"), ("ldursb", "ldursh", "ldursw"), ("ldrsb", "ldrsh", "ldrsw"),
                 ("sxtb", "sxth", "sxtw"), ("uxtb", "uxth"), ("rev16", "rev")),
    {**{f"x{n}": f"w{n}" for n in range(31)}, **{f"w{n}": f"x{n}" for n in range(31)}},
    replacement_exclude=frozenset({"sp", "x29", "x30"}),
    family={f"{bank}{n}": f"x{n}" for bank in "xw" for n in range(31)},
)

# --- arm32 -------------------------------------------------------------------------------------------
_ARM32_REGISTERS = {**{f"r{n}": "r" for n in range(11)}, "fp": "r", "ip": "r", "sp": "sp", "lr": "r"}
_ARM32_CONDITIONAL_BASES = ("b", "cmn", "cmp", "orr", "mov", "mvn", "add", "sub", "and", "eor", "rsb")
_ARM32_SUFFIXES = {name: name for name in ("eq", "ne", "hi", "hs", "lo", "ls", "gt", "ge", "lt", "le",
                                           "mi", "pl")}
ARM32 = Dialect(
    "arm32", _ARM32_REGISTERS,
    {**{key: value for base in _ARM32_CONDITIONAL_BASES for key, value in
        _condition_family(base, _ARM32_SUFFIXES).items()},
     **_pairs(("adc", "add"), ("adds", "add"), ("sbc", "sub"), ("sbcs", "subs"), ("rsc", "rsb"),
              ("lsr", "asr"))},
    _size_family(("ldrb", "ldrh", "ldr"), ("strb", "strh", "str"), ("ldrsb", "ldrsh"), ("sxtb", "sxth"),
                 ("uxtb", "uxth"), ("rev16", "rev"), ("ldrex", "ldrexd"), ("strex", "strexd")),
    replacement_exclude=frozenset({"sp"}),
)

# --- ppc64 (bare register numbers) ------------------------------------------------------------------
_PPC_BRANCHES = {"eq": "beq", "ne": "bne", "gt": "bgt", "ge": "bge", "lt": "blt", "le": "ble"}
PPC64 = Dialect(
    "ppc64", {str(n): "gpr" for n in range(32)},
    {**_condition_family("b", {arm: name[1:] for arm, name in _PPC_BRANCHES.items()}),
     "bne-": ["beq-"], "beq-": ["bne-"],
     **_pairs(("cmpd", "cmpld"), ("cmpw", "cmplw"), ("cmpdi", "cmpldi"), ("cmpwi", "cmplwi"),
              ("divd", "divdu"), ("divw", "divwu"), ("srad", "srd"), ("sraw", "srw"))},
    _size_family(("lbz", "lhz", "lwz", "ld"), ("lha", "lwa"), ("stb", "sth", "stw", "std"),
                 ("lbzx", "lhzx", "lwzx", "ldx"), ("stbx", "sthx", "stwx", "stdx"), ("slw", "sld"),
                 ("srw", "srd"), ("sraw", "srad"), ("divw", "divd"), ("divwu", "divdu"), ("mullw", "mulld"),
                 ("extsb", "extsh", "extsw"), ("lwarx", "ldarx"), ("stwcx.", "stdcx."), ("cmpw", "cmpd"),
                 ("cmplw", "cmpld"), ("cmpwi", "cmpdi"), ("sthbrx", "stwbrx", "stdbrx"), ("lwax", "ldx")),
    numeric_registers=True,
    immediate_tail={"addi": 1, "addis": 1, "andi.": 1, "andis.": 1, "li": 1, "lis": 1, "ori": 1, "oris": 1,
                    "xori": 1, "xoris": 1, "sldi": 1, "srdi": 1, "slwi": 1, "srwi": 1, "clrldi": 1,
                    "clrldi.": 1, "clrlwi": 1, "cmpdi": 1, "cmpwi": 1, "cmpldi": 1, "cmplwi": 1, "mulli": 1,
                    "subfic": 1, "rldicl": 2, "rldicr": 2, "rlwinm": 3, "sradi": 1, "srawi": 1},
    replacement_exclude=frozenset({"1"}),
)

# --- sparc64 -----------------------------------------------------------------------------------------
_SPARC_BRANCHES = {"eq": "be", "ne": "bne", "hi": "bgu", "hs": "bgeu", "lo": "blu", "ls": "bleu",
                   "gt": "bg", "ge": "bge", "lt": "bl", "le": "ble"}
SPARC64 = Dialect(
    "sparc64",
    {f"%{bank}{n}": "gpr" for bank in "goli" for n in range(8)} | {"%sp": "sp", "%fp": "gpr"},
    {**_condition_family("", _SPARC_BRANCHES), **_pairs(("srlx", "srax"), ("srl", "sra"),
                                                          ("sdivx", "udivx"), ("ldsw", "lduw"),
                                                          ("ldsh", "lduh"), ("ldsb", "ldub"))},
    _size_family(("ldub", "lduh", "lduw", "ldx"), ("ldsb", "ldsh", "ldsw"), ("stb", "sth", "st", "stx"),
                 ("sll", "sllx"), ("srl", "srlx"), ("sra", "srax"), ("cas", "casx")),
    operand_words={"%xcc": "%icc", "%icc": "%xcc"},
    replacement_exclude=frozenset({"%sp", "%o6", "%g0"}),
)

# --- mips64 ------------------------------------------------------------------------------------------
MIPS64 = Dialect(
    "mips64", {f"${n}": "gpr" for n in range(32)},
    {**_pairs(("beq", "bne"), ("beqz", "bnez"), ("bltz", "bgez"), ("blez", "bgtz"), ("slt", "sltu"),
              ("slti", "sltiu"), ("movz", "movn"), ("ddiv", "ddivu"), ("dsrl", "dsra"), ("dsrlv", "dsrav"),
              ("dsrl32", "dsra32")),
     "bltz": ["bgez", "blez"], "bgez": ["bltz", "bgtz"], "blez": ["bgtz", "bltz"], "bgtz": ["blez", "bgez"]},
    _size_family(("addu", "daddu"), ("subu", "dsubu"), ("addiu", "daddiu"), ("sll", "dsll"), ("srl", "dsrl"),
                 ("sra", "dsra"), ("sllv", "dsllv"), ("srlv", "dsrlv"), ("srav", "dsrav"), ("div", "ddiv"),
                 ("divu", "ddivu"), ("multu", "dmultu"), ("lbu", "lhu", "lwu", "ld"), ("lb", "lh", "lw"),
                 ("sb", "sh", "sw", "sd"), ("ll", "lld"), ("sc", "scd"), ("seb", "seh"), ("lwl", "ldl"),
                 ("lwr", "ldr"), ("swl", "sdl"), ("swr", "sdr"), ("dsll32", "dsll")),
    replacement_exclude=frozenset({"$29", "$0", "$26", "$27"}),
)

# --- record-encoded targets: fields that hold registers -----------------------------------------------
S390X = Dialect(
    "s390x", {str(n): "gpr" for n in range(16)},
    {**_pairs(("cgr", "clgr"), ("cr", "clr"), ("lgfi", "llilf"), ("lgfr", "llgfr"), ("lghr", "llghr"),
              ("dsgr", "dlgr"), ("srag", "srlg"), ("srak", "srlk"), ("lgf", "llgf"), ("lgh", "llgh"),
              ("lgb", "llgc"))},
    _size_family(("ar", "agr"), ("sr", "sgr"), ("nr", "ngr"), ("or", "ogr"), ("xr", "xgr"), ("msr", "msgr"),
                 ("lr", "llgfr", "lgr"), ("lcr", "lcgr"), ("cr", "cgr"), ("clr", "clgr"),
                 ("llgc", "llgh", "llgf", "lg"), ("lgb", "lgh", "lgf"), ("stcy", "sthy", "sty", "stg"),
                 ("sllk", "sllg"), ("srlk", "srlg"), ("srak", "srag"), ("csy", "csg"),
                 ("lgbr", "lghr", "lgfr"), ("llghr", "llgfr")),
    replacement_exclude=frozenset({"15"}),
)
RISCV64 = Dialect(
    "riscv64", {str(n): "gpr" for n in range(32)},
    {**_pairs(("beq", "bne"), ("blt", "bge"), ("bltu", "bgeu"), ("slt", "sltu"), ("slti", "sltiu"),
              ("sra", "srl"), ("srai", "srli"), ("sraw", "srlw"), ("sraiw", "srliw"), ("div", "divu"),
              ("rem", "remu"), ("divw", "divuw"), ("remw", "remuw"), ("lw", "lwu"), ("lh", "lhu"), ("lb", "lbu")),
     "blt": ["bge", "bltu"], "bge": ["blt", "bgeu"], "bltu": ["bgeu", "blt"], "bgeu": ["bltu", "bge"]},
    {**_pairs(("add", "addw"), ("sub", "subw"), ("sll", "sllw"), ("srl", "srlw"), ("sra", "sraw"),
              ("mul", "mulw"), ("div", "divw"), ("divu", "divuw"), ("rem", "remw"), ("remu", "remuw"),
              ("addi", "addiw"), ("slli", "slliw"), ("srli", "srliw"), ("srai", "sraiw"), ("lr.d", "lr.w"),
              ("sc.d", "sc.w")),
     **{f"amo{op}.d": [f"amo{op}.w"] for op in ("add", "and", "or", "xor", "swap")},
     **{f"amo{op}.w": [f"amo{op}.d"] for op in ("add", "and", "or", "xor", "swap")},
     **_size_family(("lbu", "lhu", "lwu", "ld"), ("lb", "lh", "lw"), ("sb", "sh", "sw", "sd"))},
    replacement_exclude=frozenset({"2", "0"}),
)

DIALECTS: dict[str, Dialect] = {
    "x86_64": _x86("x86_64", [_X86_64, _X86_32, _X86_16, _X86_8]),
    "x86_32": _x86("x86_32", [_X86_32, _X86_16, _X86_8]),
    "arm64": ARM64, "arm32": ARM32, "ppc64": PPC64, "sparc64": SPARC64,
    "mips64": MIPS64, "mips64el": Dialect(**{**MIPS64.__dict__, "arch": "mips64el"}),
    "s390x": S390X, "riscv64": RISCV64,
}

NUMBER = re.compile(r"^(#?)(-?)(0x[0-9a-fA-F]+|\d+)$")


def dialect(arch: str) -> Dialect:
    """The tables for ``arch`` (KeyError for an architecture without native mutation)."""
    return DIALECTS[arch]
