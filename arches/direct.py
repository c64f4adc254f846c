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
from itertools import accumulate
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
    A pass costs one C-level running sum over the items' current sizes (programs
    with far branches hold hundreds of thousands of instructions).
    """
    label_positions: list[tuple[int, str]] = []
    sizes: list[int] = []  # current size of each item: a label's is 0
    branches: list[int] = []
    for position, item in enumerate(items):
        if isinstance(item, Label):
            label_positions.append((position, item.name))
            sizes.append(0)
        else:
            sizes.append(item.sizes[0])
            if item.target is not None:
                branches.append(position)
    forms = dict.fromkeys(branches, 0)  # the chosen form of each branch (by position in ``items``)
    while True:
        offsets, labels = _layout(sizes, label_positions)
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
                forms[position], sizes[position], changed = form, record.sizes[form], True
        if not changed:
            break
    pieces = []
    listing = []
    for position, item in enumerate(items):
        if isinstance(item, Label):
            listing.append(f"{item.name}:")
            continue
        listing.append(f"  {offsets[position]:#06x}: {item.text}")
        target = item.target
        if target is None:
            pieces.append(item.encode(0, 0))
        else:
            pieces.append(item.encode(forms[position], labels[target] - offsets[position]))
    return b"".join(pieces), listing, labels


def _layout(sizes: list[int], label_positions: list[tuple[int, str]]) -> tuple[list[int], dict[str, int]]:
    """The offset of every item (a label's is where it stands) and of every label, for these sizes."""
    offsets = [0, *accumulate(sizes)]
    labels: dict[str, int] = {}
    for position, name in label_positions:
        if name in labels:
            raise AssemblyError(f"label {name} defined twice")
        labels[name] = offsets[position]
    return offsets, labels
