"""Labels, fixups and branch relaxation for backends that encode machine code themselves.

A chunk of a direct encoder is a list of :class:`Label` and instruction records.
A record (the :class:`Instruction` protocol) knows its listing text, the label it
refers to (if any), and one or more *forms*: a fixed instruction has one; a
branch may have a short form and longer ones (RISC-V: B-type reaches +-4 KiB, an
inverted B-type over a JAL +-1 MiB, AUIPC+JALR +-2 GiB, per the RISC-V unprivileged
ISA manual, "Control Transfer Instructions"; s390x's ``brcl`` has one
form reaching +-4 GiB). :func:`link` is the sizing pass of the kernel's JITs:
every branch starts in its shortest form; a pass lays the code out and moves each
branch whose target is out of reach to its next form; passes repeat until no
branch changes. Forms only grow, so the passes end, and the last pass has
checked every branch against the final layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from arches.base import AssemblyError


@dataclass(frozen=True)
class Label:
    """Defines label ``name`` at this position of the code."""

    name: str


class Instruction(Protocol):
    """One encoded instruction (or a fixed sequence a branch relaxes into)."""

    text: str  # for the listing
    target: str | None  # the label this instruction's displacement refers to, or None
    sizes: tuple[int, ...]  # bytes of each form, shortest first; one entry for a fixed instruction

    def reaches(self, form: int, displacement: int) -> bool:
        """Can ``form`` encode a displacement of ``displacement`` bytes (target - this instruction)?"""

    def encode(self, form: int, displacement: int) -> bytes:
        """The bytes of ``form``; ``displacement`` is 0 for an instruction without a target."""


def link(items: list[Any]) -> tuple[bytes, list[str], dict[str, int]]:
    """Lay out, relax and encode ``items``: (code, listing, offset of every label).

    Raises AssemblyError for an undefined or duplicate label, or a branch no form reaches.
    """
    forms = [0] * len(items)  # the chosen form of each record (by position in ``items``)
    branches = [position for position, item in enumerate(items)
                if not isinstance(item, Label) and item.target is not None]
    while True:
        offsets, labels = _layout(items, forms)
        changed = False
        for position in branches:
            record = items[position]
            if record.target not in labels:
                raise AssemblyError(f"undefined label {record.target} (in {record.text})")
            displacement = labels[record.target] - offsets[position]
            form = forms[position]
            while not record.reaches(form, displacement):
                form += 1
                if form == len(record.sizes):
                    raise AssemblyError(f"{record.text}: no form reaches {displacement:+#x} bytes")
            if form != forms[position]:
                forms[position], changed = form, True
        if not changed:
            break
    code = bytearray()
    listing = []
    for item, offset, form in zip(items, offsets, forms):
        if isinstance(item, Label):
            listing.append(f"{item.name}:")
            continue
        listing.append(f"  {offset:#06x}: {item.text}")
        target = item.target
        code += item.encode(form, 0 if target is None else labels[target] - offset)
    return bytes(code), listing, labels


def _layout(items: list[Any], forms: list[int]) -> tuple[list[int], dict[str, int]]:
    """The offset of every item (a label's is where it stands) and of every label, for the chosen forms."""
    offsets: list[int] = []
    append = offsets.append
    labels: dict[str, int] = {}
    offset = 0
    for item, form in zip(items, forms):
        append(offset)
        if isinstance(item, Label):
            if item.name in labels:
                raise AssemblyError(f"label {item.name} defined twice")
            labels[item.name] = offset
        else:
            offset += item.sizes[form]
    return offsets, labels
