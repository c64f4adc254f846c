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
    with pytest.raises(ValidationError, match="too long: 1000001 instructions"):
        validate(Program((Insn(0xB7),) * 1_000_000 + (Insn(0x95),)))  # the kernel's limit is 1,000,000


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


@pytest.mark.parametrize("source, index, message", [
    # the program: r1 after a helper call (arm64, s390x, ppc64, sparc64 JITs give r0=2)
    ("mov %r1, 5\ncall 102\nmov %r0, %r1\nexit", 2, "mov reads r1.*scratch after the helper call at instruction 1"),
    ("exit", 0, "exit returns r0.*a program starts with only r1"),
    ("mov %r0, %r3\nexit", 0, "mov reads r3"),
    ("add %r0, 1\nexit", 0, "add reads r0"),  # ALU ops read their destination
    ("mov %r0, 0\nneg %r4\nexit", 1, "neg reads r4"),
    ("mov %r0, 0\nstxdw [%r10-8], %r6\nexit", 1, "stxdw reads r6"),
    ("mov %r0, 0\nstw [%r7], 1\nexit", 1, "stw reads r7"),
    ("mov %r1, 0\nlock cmpxchg [%r10-8], %r1\nexit", 1, "cmpxchg reads r0"),
    ("jeq %r9, 0, +0\nmov %r0, 0\nexit", 0, "jeq reads r9"),
    # path-sensitive: written on one branch only
    ("mov %r0, 0\njeq %r2, 0, +1\nmov %r3, 1\nadd %r0, %r3\nexit", 3, "add reads r3"),
    ("jeq %r2, 0, +1\nmov %r0, 1\nexit", 2, "exit returns r0"),
    # calls: r1-r5 are scratch afterwards, local calls too, and LD_ABS/LD_IND as well
    ("mov %r0, 0\ncall 102\nmov %r1, 4\ncall 104\nexit", 3, "call reads r2.*helper call at instruction 1"),
    ("mov %r2, 1\ncall local f\nadd %r0, %r2\nexit\nf:\nmov %r0, 1\nexit", 2, "local call at instruction 1"),
    ("mov %r0, 0\nldabsb 1\nmov %r0, %r5\nexit", 2, "packet load at instruction 1"),
    # a function starts with r10 and the arguments every call site sets
    ("mov %r6, 1\ncall local f\nexit\nf:\nmov %r0, %r6\nexit", 3, "a function starts with only r10"),
    ("mov %r3, 1\ncall local f\ncall local f\nexit\nf:\nmov %r0, %r3\nexit", 4,
     "the local call at instruction 2 does not set r3"),
    ("mov %r0, 1\ncall local f\nexit\nf:\nexit", 3, "exit returns r0"),
])
def test_undefined_reads_are_rejected_naming_instruction_and_register(source, index, message):
    with pytest.raises(ValidationError, match=message) as error:
        validate(assemble(source))
    assert error.value.index == index


@pytest.mark.parametrize("source", [
    "mov %r0, 0\njeq %r2, 0, +2\nmov %r3, 1\nja +1\nmov %r3, 2\nadd %r0, %r3\nexit",  # both branches write
    "mov %r0, 0\nloop:\nmov %r3, 1\nadd %r0, 1\njlt %r0, 5, loop\nadd %r0, %r3\nexit",  # the body runs once
    "mov %r1, 9\ncall 102\nmov %r1, 4\ncall 102\nexit",  # sqrti reads r1 only
    "mov %r6, 7\ncall 102\nmov %r0, %r6\nexit",  # r6-r9 survive calls
    "mov %r3, 1\ncall local f\nmov %r3, 2\ncall local f\nexit\nf:\nmov %r0, %r3\nexit",  # every site sets r3
    "mov %r0, 0\nldindb %r2, 0\nexit",  # r2 (the input length) is defined at entry
    "mov %r0, 0\nlock cmpxchg [%r10-8], %r1\nexit",
])
def test_programs_that_write_before_reading_pass(source):
    validate(assemble(source))


def _chain(calls: int) -> str:
    """main plus ``calls`` nested functions, each calling the next."""
    lines = ["call local f1", "exit"]
    for number in range(1, calls + 1):
        lines += [f"f{number}:"] + ([f"call local f{number + 1}"] if number < calls else ["mov %r0, 0"]) + ["exit"]
    return "\n".join(lines)


def test_the_kernel_call_depth_limit_counts_main():
    validate(assemble(_chain(7)))  # 8 frames: the kernel's MAX_CALL_FRAMES
    with pytest.raises(ValidationError, match="has 9 frames \\(limit 8, main included\\)") as error:
        validate(assemble(_chain(8)))
    assert error.value.index == 14  # the call into the ninth frame


def test_the_combined_stack_limit_along_a_call_chain():
    both_256 = "stdw [%r10-256], 1\ncall local f\nexit\nf:\nstdw [%r10-256], 2\nmov %r0, 0\nexit"
    validate(assemble(both_256))
    over = both_256.replace("[%r10-256], 2", "[%r10-264], 2")  # 264 counts as 288: 544 in all
    with pytest.raises(ValidationError, match="0 -> 3 needs 544 bytes of stack") as error:
        validate(assemble(over))
    assert error.value.index == 1
    with pytest.raises(ValidationError, match="outside the frame") as error:
        validate(assemble("mov %r0, 0\nstxdw [%r10-4], %r0\nexit"))  # crosses the top of the frame
    assert error.value.index == 1


def test_call_graphs_that_broke_the_recursive_validator_are_rejected_quickly():
    """36 functions each calling the next two took 37 s; a 2000-deep chain hit RecursionError."""
    fan = ["call local f0", "exit"]
    for number in range(36):
        fan += [f"f{number}:"] + ([f"call local f{number + 1}", f"call local f{number + 2}"]
                                  if number + 2 < 36 else []) + ["mov %r0, 0", "exit"]
    with pytest.raises(ValidationError, match="36 frames"):
        validate(assemble("\n".join(fan)))
    with pytest.raises(ValidationError, match="2001 frames"):
        validate(assemble(_chain(2000)))
    with pytest.raises(ValidationError, match="recursive local call"):
        validate(assemble(_chain(3000).replace("f3000:\nmov %r0, 0", "f3000:\ncall local f1")))
