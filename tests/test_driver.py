"""The translation driver (arches/driver.py) and the direct encoder's linker (arches/direct.py)."""
import copy

import pytest

import arches
from arches.base import AssemblyError, UnsupportedInstruction
from arches.direct import Label, link
from arches.x86_64 import X86_64Backend
from harness import isa
from harness.cases.asm import assemble
from harness.isa import Insn, Program


@pytest.mark.parametrize("name", arches.names())
def test_a_slot_outside_the_isa_is_unsupported_and_named_by_its_opcode(name):
    # call with src=2 (a BTF function id): no instruction of the ISA, so no mnemonic
    program = Program((Insn(isa.JMP | isa.CALL, 0, isa.CALL_BTF, 0, 7), Insn(isa.JMP | isa.EXIT)))
    with pytest.raises(UnsupportedInstruction) as error:
        arches.get(name).translate(program)
    assert str(error.value) == (f"instruction 0: opcode 0x85 (85 20 00 00 07 00 00 00) is not supported "
                                f"by the {name} backend")
    assert error.value.index == 0 and "None" not in str(error.value)


def test_a_builder_without_a_translation_is_reported_with_the_mnemonic():
    class WithoutFetchAnd(X86_64Backend):
        def build_atomic(self, insn, index):
            return None if insn.imm == isa.AND | isa.ATOMIC_FETCH else super().build_atomic(insn, index)

    program = assemble("mov %r0, 1\nstxdw [%r10-8], %r0\nlock fetch and32 [%r10-8], %r0\nexit")
    with pytest.raises(UnsupportedInstruction, match=r"^instruction 2: lock fetch and32 is not supported "
                                                     r"by the x86_64 backend$"):
        WithoutFetchAnd().translate(program)


def test_map_loads_not_resolved_are_unsupported_by_name():
    program = Program(isa.lddw_pair(1, 0, isa.LDDW_MAP_FD) + (Insn(isa.JMP | isa.EXIT),))
    with pytest.raises(UnsupportedInstruction, match="instruction 0: lddw map is not supported"):
        arches.get("s390x").translate(program)


def test_the_cache_says_what_it_served_and_a_copy_gets_its_own():
    backend = X86_64Backend()
    program = assemble("mov %r0, 2\nexit")
    first, cached = backend.compile_cached(program)
    again, cached_again = backend.compile_cached(program)
    assert (cached, cached_again) == (False, True) and again is first
    clone = copy.copy(backend)
    clone.clear_cache()
    assert clone.compile_cached(program)[1] is False and backend.compile_cached(program)[1] is True


class Jump:
    """A toy branch with two forms: 2 bytes reaching -16..15, 6 bytes reaching anything."""

    def __init__(self, target):
        self.target, self.text, self.sizes = target, f"jump {target}", (2, 6)

    def reaches(self, form, displacement):
        return form == 1 or -16 <= displacement < 16

    def encode(self, form, displacement):
        if form == 0:
            return bytes([0xB0, displacement & 0xFF])
        return bytes([0xB1, 0]) + displacement.to_bytes(4, "little", signed=True)


class Filler:
    """A fixed instruction of ``size`` bytes."""

    def __init__(self, size):
        self.target, self.text, self.sizes = None, f"fill {size}", (size,)

    def reaches(self, form, displacement):
        return True

    def encode(self, form, displacement):
        return bytes([0xF0] * self.sizes[0])


def test_a_near_branch_keeps_its_short_form():
    code, listing, labels = link([Jump("a"), Filler(4), Label("a"), Filler(1)])
    assert code == bytes([0xB0, 6]) + bytes([0xF0] * 5) and labels == {"a": 6}
    assert listing == ["  0x0000: jump a", "  0x0002: fill 4", "a:", "  0x0006: fill 1"]


def test_growing_one_branch_pushes_another_out_of_reach():
    # 'outer' reaches 'end' over 13 bytes only while 'inner' stays short; 'inner' jumps
    # 20 bytes back, so it grows to 6 bytes, and then 'outer' must grow in the next pass.
    items = [Label("top"), Filler(14), Jump("end"), Filler(2), Jump("top"), Filler(7), Label("end")]
    code, _, labels = link(items)
    assert labels == {"top": 0, "end": 14 + 6 + 2 + 6 + 7}
    outer, inner = code[14:20], code[22:28]
    assert outer == bytes([0xB1, 0]) + (35 - 14).to_bytes(4, "little", signed=True)
    assert inner == bytes([0xB1, 0]) + (0 - 22).to_bytes(4, "little", signed=True)


def test_linker_errors_name_the_label_or_instruction():
    with pytest.raises(AssemblyError, match="undefined label nowhere"):
        link([Jump("nowhere")])
    with pytest.raises(AssemblyError, match="label a defined twice"):
        link([Label("a"), Filler(1), Label("a")])

    class ShortOnly(Jump):
        def __init__(self, target):
            super().__init__(target)
            self.sizes = (2,)  # no long form

    with pytest.raises(AssemblyError, match=r"jump far: no form reaches \+0x66 bytes"):
        link([ShortOnly("far"), Filler(100), Label("far")])


def test_a_label_table_that_is_not_last_leaves_the_map_empty_not_wrong():
    class TrailingPool(X86_64Backend):
        def keystone_assemble(self, text, address):  # as keystone does with an ARM literal pool
            return super().keystone_assemble(text, address) + b"\x90" * 4

    program = assemble("mov %r0, 1\nexit")
    native = TrailingPool().translate(program)
    assert native.bpf_to_native == {}
    assert native.code == X86_64Backend().translate(program).code + b"\x90" * 4
