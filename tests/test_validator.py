"""Static rejections, each naming the instruction index."""
import pytest

from harness.cases.asm import assemble
from harness.isa import Insn, Program
from harness.oracle.validator import ValidationError, validate


def raw(*hex_slots: str) -> Program:
    return Program.decode(bytes.fromhex("".join(hex_slots)))


EXIT = "9500000000000000"


@pytest.mark.parametrize("program, index, message", [
    (raw("ff00000000000000", EXIT), 0, "unknown opcode"),
    (raw("b710000001000000", EXIT), 0, "reserved field src"),  # mov r0, imm with src=1
    (raw("9501000000000000"), 0, "reserved field dst"),
    (raw("0500050000000000", EXIT), 0, "out of range"),
    (raw("0500010000000000", "1800000001000000", "0000000000000000", EXIT), 0, "middle of the lddw"),
    (raw("b700000000000000", "1800000001000000"), 1, "incomplete lddw"),
    (raw("1800000001000000", "b700000000000000", EXIT), 1, "incomplete lddw"),
    (raw("b70a000001000000", EXIT), 0, "writes r10"),
    (raw("bf0b000000000000", EXIT), 0, "register number 11"),
    (raw("850000000f270000", EXIT), 0, "unknown helper 9999"),
    (raw("b700000000000000", "0500feff00000000"), None, "no exit"),
    (raw(EXIT, "b700000000000000"), 1, "falls off the end"),
])
def test_rejections_name_the_instruction(program, index, message):
    with pytest.raises(ValidationError, match=message) as error:
        validate(program)
    assert error.value.index == index
    if index is not None:
        assert str(error.value).startswith(f"instruction {index}: ")


def test_empty_and_too_long_programs():
    with pytest.raises(ValidationError, match="no instructions"):
        validate(Program(()))
    with pytest.raises(ValidationError, match="too long"):
        validate(Program((Insn(0xB7),) * 65536 + (Insn(0x95),)))


def test_atomic_fetch_into_r10_is_rejected():
    with pytest.raises(ValidationError, match="writes r10"):
        validate(assemble("lock fetch add [%r1], %r10\nexit"))


def test_recursion_is_rejected():
    with pytest.raises(ValidationError, match="recursive"):
        validate(assemble("call local f\nexit\nf:\ncall local f\nexit"))


def test_good_programs_pass():
    validate(assemble("mov %r0, 1\nja +0\nlddw %r1, 5\ncall local f\nexit\nf:\nmov %r0, 2\nexit"))
    validate(assemble("stxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nja -1\nexit"))  # loops are dynamic


@pytest.mark.parametrize("source, index, message", [
    # main jumps into the function's body (kernel: "jump out of range from insn ... to ...")
    ("call local f\njeq %r0, 0, inside\nexit\nf:\nmov %r0, 1\ninside:\nexit", 1, "outside it"),
    # a function that runs off its end into the next one
    ("call local f\ncall local g\nexit\nf:\nmov %r0, 1\ng:\nmov %r0, 2\nexit", 3,
     "falls through into the function at 4"),
])
def test_functions_are_closed_regions(source, index, message):
    with pytest.raises(ValidationError, match=message) as error:
        validate(assemble(source))
    assert error.value.index == index


def test_a_program_that_jumps_over_its_function_is_rejected_as_the_kernel_does():
    # Functions are split by position (as check_subprogs does), so main's code after f
    # belongs to f: the jump over it crosses a function boundary.
    with pytest.raises(ValidationError, match="outside it"):
        validate(assemble("ja main\nf:\nmov %r0, 1\nexit\nmain:\ncall local f\nexit"))
