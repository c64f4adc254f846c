"""Static checks: reject what the kernel verifier would refuse to load, and every
program whose result the ISA leaves undefined.

Dynamic faults (bad pointers, runaway loops) are the interpreter's business; this
module only looks at the instructions. Each rejection names the instruction index.
The checks, in order: the encoding of every slot (known opcodes, reserved fields
zero, registers r0-r10, r10 never written, jump and call targets inside the
program and not inside an lddw); functions as closed regions with the kernel's
call-chain limits (:mod:`harness.oracle.functions`); then no register read before
it is defined on every path (:mod:`harness.oracle.registers`). All of it runs in
time linear in the program size, whatever the call graph.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from harness import isa
from harness.isa import Insn, Program
from harness.oracle.functions import check_call_graph, split_functions
from harness.oracle.helpers import HELPERS, Helper
from harness.oracle.registers import check_registers
from harness.oracle.rejection import ValidationError

__all__ = ["MAX_SLOTS", "ValidationError", "ValidatorConfig", "validate"]

MAX_SLOTS = 1_000_000  # the kernel's limit for privileged programs (include/linux/bpf.h BPF_COMPLEXITY_LIMIT_INSNS)


@dataclass(frozen=True)
class ValidatorConfig:
    """What the environment offers: the helpers a call may name (the case's helper set,
    by number), maps loaded."""

    helpers: Mapping[int, Helper] = field(default_factory=lambda: HELPERS)
    map_count: int = 0


def _reserved_fields_ok(insn: Insn) -> str | None:
    """None when every field the instruction does not use is zero; else the field's name."""
    klass, op = insn.klass, insn.op
    unused: list[str] = []
    if klass in (isa.ALU, isa.ALU64):
        if op == isa.END:
            unused = ["src", "off"]
        elif op == isa.NEG:
            unused = ["src", "off", "imm"]
        elif insn.source == isa.X:
            unused = ["imm"] + ([] if op in (isa.DIV, isa.MOD, isa.MOV) else ["off"])
        else:
            unused = ["src"] + ([] if op in (isa.DIV, isa.MOD) else ["off"])
    elif klass in (isa.JMP, isa.JMP32):
        if insn.opcode == isa.JMP | isa.EXIT:
            unused = ["dst", "src", "off", "imm"]
        elif insn.opcode == isa.JMP | isa.CALL:
            unused = ["dst", "off"]
        elif op == isa.JA:
            unused = ["dst", "src", "imm"] if klass == isa.JMP else ["dst", "src", "off"]
        elif insn.source == isa.X:
            unused = ["imm"]
        else:
            unused = ["src"]
    elif insn.opcode == isa.LDDW:
        unused = ["off"]
    elif klass == isa.LD:
        unused = ["dst", "off"] + (["src"] if insn.mode == isa.ABS else [])
    elif klass == isa.LDX:
        unused = ["imm"]
    elif klass == isa.ST:
        unused = ["src"]
    elif klass == isa.STX and insn.mode == isa.MEM:
        unused = ["imm"]
    for name in unused:
        if getattr(insn, name):
            return name
    return None


def _written_register(insn: Insn) -> int | None:
    """The register an instruction writes (other than r0 for calls), if any."""
    klass = insn.klass
    if klass in (isa.ALU, isa.ALU64, isa.LDX) or insn.opcode == isa.LDDW:
        return insn.dst
    if klass == isa.STX and insn.mode == isa.ATOMIC and insn.imm & isa.ATOMIC_FETCH \
            and insn.imm != isa.ATOMIC_CMPXCHG:
        return insn.src
    return None


def validate(program: Program, config: ValidatorConfig = ValidatorConfig()) -> None:
    """Raise ValidationError for the first problem found; return None for a good program."""
    insns = program.insns
    if not insns:
        raise ValidationError(None, "program has no instructions")
    if len(insns) > MAX_SLOTS:
        raise ValidationError(None, f"program too long: {len(insns)} instructions "
                                    f"(limit {MAX_SLOTS})")
    second_halves: set[int] = set()
    index = 0
    while index < len(insns):
        insn = insns[index]
        if insn.opcode == isa.LDDW:
            if index + 1 >= len(insns):
                raise ValidationError(index, "incomplete lddw: the second slot is missing")
            tail = insns[index + 1]
            if tail.opcode or tail.dst or tail.src or tail.off:
                raise ValidationError(index + 1, "incomplete lddw: second slot must have "
                                                 "opcode, registers and offset zero")
            second_halves.add(index + 1)
            index += 2
        else:
            index += 1
    starts = [i for i in range(len(insns)) if i not in second_halves]
    has_exit = False
    for index in starts:
        insn = insns[index]
        info = isa.describe(insn)
        if insn.opcode == isa.JMP | isa.CALL | isa.X:  # bpf_conformance's "callx" group
            raise ValidationError(index, "callx (opcode 0x8d, a call through a register) is not in "
                                         "RFC 9669, whose CALL takes a constant only; the Linux "
                                         "verifier and uBPF refuse it too")
        if info is None:
            raise ValidationError(index, f"unknown opcode {insn.opcode:#04x}"
                                  + _variant_hint(insn))
        bad = _reserved_fields_ok(insn)
        if bad:
            raise ValidationError(index, f"reserved field {bad} is not zero in {info.mnemonic}")
        if insn.dst > 10 or insn.src > 10:
            raise ValidationError(index, f"register number {max(insn.dst, insn.src)} > 10")
        written = _written_register(insn)
        if written == isa.FRAME_POINTER:
            raise ValidationError(index, f"{info.mnemonic} writes r10, the read-only frame pointer")
        if insn.opcode == isa.JMP | isa.EXIT:
            has_exit = True
        if insn.opcode == isa.LDDW and insn.src == isa.LDDW_MAP_FD:
            if not 0 <= insn.imm < config.map_count:
                raise ValidationError(index, f"lddw refers to map {insn.imm}, but the case "
                                             f"declares {config.map_count} map(s)")
        if insn.opcode == isa.JMP | isa.CALL:
            if insn.src == isa.CALL_HELPER and insn.imm not in config.helpers:
                raise ValidationError(index, f"call to unknown helper {insn.imm}")
            if insn.src == isa.CALL_LOCAL:
                target = index + insn.imm + 1
                _check_target(index, target, len(insns), second_halves, "call")
        elif insn.klass in (isa.JMP, isa.JMP32) and insn.opcode != isa.JMP | isa.EXIT:
            offset = insn.imm if insn.opcode == isa.JMP32 | isa.JA else insn.off
            _check_target(index, index + offset + 1, len(insns), second_halves, "jump")
    if not has_exit:
        raise ValidationError(None, "program has no exit instruction")
    last = starts[-1]
    last_insn = insns[last]
    if last_insn.opcode not in (isa.JMP | isa.EXIT, isa.JMP | isa.JA, isa.JMP32 | isa.JA):
        raise ValidationError(last, "the last instruction falls off the end of the program")
    ordered = check_call_graph(split_functions(program, starts))
    check_registers(program, ordered, config.helpers)


def _variant_hint(insn: Insn) -> str:
    """For a known opcode byte with an unknown variant, name the field that selects it."""
    opcode, variant = isa.opcode_key(insn)
    if not any(key[0] == opcode for key in isa.OPCODES):
        return ""
    klass, op = opcode & 0x07, opcode & 0xF0
    if klass in (isa.ALU, isa.ALU64) and op != isa.END:
        field = "offset"
    elif opcode in (isa.JMP | isa.CALL, isa.LDDW):
        field = "src"
    else:
        field = "imm"
    return f" with {field} {variant}"


def _check_target(index: int, target: int, length: int, second_halves: set[int],
                  what: str) -> None:
    if not 0 <= target < length:
        raise ValidationError(index, f"{what} out of range: target {target} is outside "
                                     f"0..{length - 1}")
    if target in second_halves:
        raise ValidationError(index, f"{what} into the middle of the lddw at {target - 1}")
