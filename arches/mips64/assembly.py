"""The MIPS64 assembly this backend writes, and how keystone is held to it.

Facts measured with keystone 0.9.2 and capstone 5.0.6 (KS_MODE_MIPS64 and
CS_MODE_MIPS64, both byte orders), each handled here:

* keystone reorders by default: after every branch or jump it inserts a delay-slot
  ``nop`` of its own (``daddiu; daddiu; jr $ra; nop`` gave 20 bytes, ``beq; nop``
  three instructions). ``.set noreorder`` (in :data:`PREAMBLE`) stops that: the code is
  exactly what was written, delay slots included.
* keystone's returned count is not an instruction count: it counts statements,
  labels included, and ``.set mips64r2`` and ``.option pic0`` count twice. The
  honest check is on bytes (:func:`instruction_words`): no macro is ever written,
  so every instruction line is one 4-byte word.
* keystone expands macros silently: the two-operand ``ddivu rs, rt`` becomes
  ``bnez; ddivu; break 7; mflo``, ``li``/``dli`` of wide values several words, and
  ``jal label`` without ``.option pic0`` the PIC sequence ``ld $t9, ($gp); jalr $t9``.
  The backend writes ``ddivu $0, rs, rt``, explicit ``lui``/``ori`` and ``.option pic0``.
* MIPS64r2 instructions (dext, dsbh, dshd, seb, seh) need ``.set mips64r2``.
* A conditional branch to a label beyond the 16-bit reach (+-128 KiB) is *not*
  refused: keystone prints "out of range PC16 fixup" on stderr and returns code with
  the offset wrapped. So :func:`relax` decides reach before keystone sees the text
  (every line's size is known), and the backend compares its label offsets with
  keystone's afterwards.
* A numeric branch operand is the absolute target, but only as a signed 18-bit
  value: keystone takes it modulo 2**18 (larger ones are "invalid operand"), which
  is all a 16-bit word offset can encode; ``j``/``jal`` take the full address.
  capstone prints absolute targets for both (:func:`for_keystone` converts).
* Register names: keystone reads n64 names (``$t0`` is $12, ``$a4`` $8), capstone
  prints o32 names (``$t0`` is $8). The backend writes numbers; listings are
  turned into n64 names (:func:`n64_names`).
* capstone shows ``dinsu $a0, $zero, 32, 32`` as ``dinsu ..., 0, 0x20`` (a wrong
  position, so it cannot round-trip): the backend uses ``dext`` instead.
"""
from __future__ import annotations

import re

from harness import layout

# Written before every program: no delay-slot nops of keystone's own, the MIPS64r2
# instructions, absolute (non-PIC) jal.
PREAMBLE = ".set noreorder\n.set mips64r2\n.option pic0\n"

# A conditional branch and the one that branches on the opposite condition.
INVERSE = {"beq": "bne", "bne": "beq", "beqz": "bnez", "bnez": "beqz",
           "bltz": "bgez", "bgez": "bltz", "blez": "bgtz", "bgtz": "blez"}
BRANCH_REACH = (-0x20000, 0x1FFFC)  # offset from the delay slot: a signed 16-bit word count
WORD = 4


class Branch(str):
    """A conditional branch to a label together with its delay slot (two lines of text).

    :func:`relax` keeps it as written when the label is within reach and otherwise
    replaces it with the inverted branch over a ``j`` (which reaches the whole 256 MiB
    region): ``b<not cond> skip; <slot>; j target; nop; skip:``. The slot stays
    behind the first branch, so it still runs on both paths.
    """

    condition: str
    operands: tuple[str, ...]
    target: str
    slot: str

    def __new__(cls, condition: str, operands: tuple[str, ...], target: str, slot: str = "nop") -> "Branch":
        if condition not in INVERSE:
            raise ValueError(f"not a relaxable conditional branch: {condition}")
        branch = super().__new__(cls, f"{condition} {', '.join((*operands, target))}\n{slot}")
        branch.condition, branch.operands, branch.target, branch.slot = condition, operands, target, slot
        return branch

    def relaxed(self, skip: str) -> list[str]:
        inverted = f"{INVERSE[self.condition]} {', '.join((*self.operands, skip))}"
        return [inverted, self.slot, f"j {self.target}", "nop", f"{skip}:"]


def is_label(line: str) -> bool:
    return line.endswith(":")


def line_words(line: str) -> int:
    """How many 4-byte words one line assembles to when keystone adds nothing of its own.

    Labels and directives take none, except ``.long``/``.word`` (one per operand);
    every other line is one instruction.
    """
    line = line.strip()
    if not line or is_label(line):
        return 0
    if line.startswith((".long", ".word")):
        return line.count(",") + 1
    return 0 if line.startswith(".") else 1


def instruction_words(text: str) -> int:
    """How many 4-byte words ``text`` assembles to (:func:`line_words` of each line)."""
    return sum(line_words(line) for line in text.split("\n"))


def layout_words(items: list[str], far: set[int]) -> tuple[list[int], dict[str, int]]:
    """(the word position of every item, the word position of every label), with the
    Branch items at the indexes in ``far`` in their long form (4 words, then label Lfar<index>)."""
    positions: list[int] = []
    labels: dict[str, int] = {}
    position = 0
    for index, item in enumerate(items):
        positions.append(position)
        if isinstance(item, Branch):
            if index in far:
                position += 4
                labels[f"Lfar{index}"] = position
            else:
                position += 2
        elif is_label(item):
            labels[item[:-1]] = position
        else:  # builders give one line per item (a label inside a longer one would fail the label check)
            position += instruction_words(item)
    return positions, labels


_IS_DIRECTIVE = re.compile(r"\.(?!long\b|word\b)")  # assembler directives other than data words take no slot
_CONTROL = re.compile(r"(b|bal|beq|bne|beqz|bnez|bltz|bgez|blez|bgtz|j|jal|jr|jalr)\b")


def check_delay_slots(lines: list[str]) -> None:
    """Every branch and jump is followed directly by its delay slot: an instruction that is
    not itself a branch or jump (the ISA leaves that UNPREDICTABLE), with no label between."""
    pending = ""
    pieces = (piece.strip() for item in lines for piece in item.split("\n"))
    for line in (piece for piece in pieces if piece and not _IS_DIRECTIVE.match(piece)):
        if pending and (is_label(line) or _CONTROL.match(line)):
            raise ValueError(f"the delay slot of `{pending}` holds `{line}`: it must be a plain instruction")
        pending = line if _CONTROL.match(line) else ""
    if pending:
        raise ValueError(f"`{pending}` ends the code without a delay slot")


def check_jump_region() -> None:
    """``j``/``jal`` replace the low 28 bits of the PC: all code must share one 256 MiB region."""
    first, last = layout.CODE_BASE, layout.CODE_BASE + layout.CODE_SIZE - 1
    if first >> 28 != last >> 28:
        raise ValueError(f"the code region {first:#x}-{last:#x} crosses a 256 MiB boundary: "
                         "j/jal cannot reach all of it")


def relax(items: list[str]) -> tuple[list[str], dict[str, int]]:
    """Replace every Branch whose label is out of the 16-bit reach by its long form.

    Branches only grow, so the loop ends; it is the sizing pass of the kernel JITs.
    Returns the lines to assemble and the byte offset of every label in them.
    """
    far: set[int] = set()
    while True:
        positions, labels = layout_words(items, far)
        grown = {index for index, item in enumerate(items)
                 if isinstance(item, Branch) and index not in far
                 and not BRANCH_REACH[0] <= WORD * (labels[item.target] - positions[index] - 1) <= BRANCH_REACH[1]}
        if not grown:
            break
        far |= grown
    lines = [piece for index, item in enumerate(items)
             for piece in (item.relaxed(f"Lfar{index}") if index in far else (item,))]
    return lines, {name: WORD * position for name, position in labels.items()}


# capstone prints o32 register names; keystone (and a MIPS64 reader) use n64 names.
_O32_TO_N64 = {"t0": "a4", "t1": "a5", "t2": "a6", "t3": "a7", "t4": "t0", "t5": "t1", "t6": "t2", "t7": "t3"}
_REGISTER = re.compile(r"\$([a-z]+[0-9]?)\b")
_BRANCHES = frozenset({"b", "bal", "beq", "bne", "beqz", "bnez", "bltz", "bgez", "blez", "bgtz",
                       "bltzal", "bgezal"})


def n64_names(operands: str) -> str:
    """capstone's operand text with n64 register names (``$t0`` -> ``$a4``, ``$t4`` -> ``$t0``)."""
    return _REGISTER.sub(lambda match: "$" + _O32_TO_N64.get(match.group(1), match.group(1)), operands)


def for_keystone(mnemonic: str, operands: str) -> str:
    """One capstone line as keystone reads it back: n64 names, branch targets modulo 2**18."""
    operands = n64_names(operands)
    if mnemonic in _BRANCHES:
        parts = operands.split(", ")
        parts[-1] = str((int(parts[-1], 0) + 0x20000) % 0x40000 - 0x20000)
        operands = ", ".join(parts)
    return f"{PREAMBLE}{mnemonic} {operands}"
