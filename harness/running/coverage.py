"""Which instruction forms of the ISA a set of corpus cases exercises."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness import isa
from harness.cases.corpus import CorpusError, load_case


@dataclass
class Coverage:
    total: int
    covered: set[tuple[int, int]] = field(default_factory=set)
    by_case: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    slots: dict[str, int] = field(default_factory=dict)  # program length of each case

    @property
    def covered_count(self) -> int:
        return len(self.covered)

    @property
    def missing(self) -> list[tuple[int, int]]:
        return sorted(set(isa.OPCODES) - self.covered)

    @property
    def missing_names(self) -> list[str]:
        return [form_name(key) for key in self.missing]


def form_name(key: tuple[int, int]) -> str:
    """The mnemonic, marked (imm) or (reg) where both source forms exist."""
    opcode, _ = key
    name = isa.OPCODES[key].mnemonic
    klass, op = opcode & 0x07, opcode & 0xF0
    if (klass in (isa.ALU, isa.ALU64) and op not in (isa.END, isa.NEG)) or \
            (klass in (isa.JMP, isa.JMP32) and op not in (isa.JA, isa.CALL, isa.EXIT)):
        return f"{name} ({'reg' if opcode & isa.X else 'imm'})"
    return name


def opcode_keys() -> set[tuple[int, int]]:
    return set(isa.OPCODES)


def program_forms(program: isa.Program) -> set[tuple[int, int]]:
    """The OPCODES keys of the instructions in ``program`` (invalid ones are left out)."""
    forms = set()
    for index in program.instruction_starts():
        key = isa.opcode_key(program.insns[index])
        if key in isa.OPCODES:
            forms.add(key)
    return forms


def opcode_coverage(case_paths: list[str], root: Path | None = None) -> Coverage:
    """Coverage of the cases at ``case_paths`` (relative paths resolve against ``root``)."""
    coverage = Coverage(total=len(isa.OPCODES))
    for name in case_paths:
        path = Path(name)
        if not path.is_absolute() and root is not None:
            path = root / path
        try:
            program = load_case(path).program
        except CorpusError:
            continue
        forms = program_forms(program)
        coverage.by_case[name] = forms
        coverage.slots[name] = len(program.insns)
        coverage.covered |= forms
    return coverage
