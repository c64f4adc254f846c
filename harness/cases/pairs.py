"""The operand pairs a generated family case names in its comments, for failure reports.

A family case (corpus/generate_families.py) checks dozens of operand pairs in one
program: pair ``i``'s result is stored in the stack slot at ``[r10 - 8*i]``, or sets
one bit of r0 (the jump families). The generator writes one comment line per pair::

    # pair 12 at [r10-96]: add32 %r4, %r7 with %r4 = 0xa5a5a5a500000001, %r7 = 0x5a3c5a3c7fffffff
    # pair 3 at r0 bit 53: jeq %r2, 7 with %r2 = 0x7: not taken

so a failure can say which pair went wrong, with its operands, instead of leaving
the reader to turn a stack address into a pair number by hand.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_NOTE = re.compile(r"^# pair (\d+) at (?:\[r10-(\d+)\]|r0 bit (\d+))(?:: (.*))?$")
MAX_NOTE_BYTES = 1 << 20  # pair lines come first in a family file; a giant case is read no further


@dataclass(frozen=True)
class PairNote:
    """One operand pair of a family case: where its result goes and what computed it."""

    number: int
    slot: int | None  # the result is stored at [r10 - slot]
    r0_bit: int | None  # or it sets this bit of r0
    text: str  # the operation and its operands, e.g. "add32 %r4, %r7 with %r4 = 0x1, %r7 = 0x2"


def pair_notes(path: str | Path) -> list[PairNote]:
    """The pair lines of a case file, in order (none for a hand-written case or an unreadable file)."""
    try:
        with open(path, "rb") as file:
            head = file.read(MAX_NOTE_BYTES).decode("utf-8", "replace")
    except OSError:
        return []
    notes = []
    for line in head.splitlines():
        match = _NOTE.match(line.rstrip())
        if match:
            number, slot, bit, text = match.groups()
            notes.append(PairNote(int(number), int(slot) if slot else None, int(bit) if bit else None, text or ""))
    return notes
