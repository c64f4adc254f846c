"""The text dialect: assembling, disassembling, and the round trip between them."""
import random

import pytest

from harness.cases.asm import AsmError, assemble, disassemble_text
from harness.isa import Insn, Program

DIALECT_EXAMPLES = {
    "mov32 %r0, 0": "b400000000000000",
    "add %r1, -3": "07010000fdffffff",
    "ldxh %r0, [%r1+2]": "6910020000000000",
    "stxdw [%r10-8], %r0": "7b0af8ff00000000",
    "jne %r0, %r1, +2": "5d10020000000000",
    "lock cmpxchg [%r10-8], %r1": "db1af8fff1000000",
    "lock fetch add [%r1], %r2": "db21000001000000",
    "be16 %r0": "dc00000010000000",
    "le64 %r0": "d400000040000000",
    "bswap32 %r0": "d700000020000000",
    "sdiv32 %r0, 3": "3400010003000000",
    "movsx832 %r0, %r1": "bc10080000000000",
    "ldxsh %r0, [%r1]": "8910000000000000",
    "call 1": "8500000001000000",
    "exit": "9500000000000000",
}


@pytest.mark.parametrize("text", sorted(DIALECT_EXAMPLES))
def test_dialect_examples_encode_as_the_rfc_says(text):
    assert assemble(text).encode().hex() == DIALECT_EXAMPLES[text]


def test_lddw_takes_two_slots():
    program = assemble("lddw %r0, 0x1122334455667788")
    assert program.encode().hex() == "1800000088776655" "0000000044332211"


def test_labels_resolve_forward_and_backward():
    program = assemble("top:\n  add %r0, 1\n  jlt %r0, 5, top\n  ja end\n  mov %r0, 9\nend: exit")
    assert program.insns[1].off == -2
    assert program.insns[2].off == 1


def test_call_local_uses_imm_as_offset():
    program = assemble("call local f\nexit\nf:\nmov %r0, 1\nexit")
    assert (program.insns[0].src, program.insns[0].imm) == (1, 1)


def test_undefined_exit_label_means_last_exit():
    program = assemble("jne %r0, 0, exit\nmov %r0, 0\nexit")
    assert program.insns[0].off == 1


@pytest.mark.parametrize("source, line, message", [
    ("mov %r0, 1\nfrob %r1", 2, "unknown mnemonic"),
    ("mov %r16, 1", 1, "no register"),
    ("ldxw %r0, %r1", 1, "memory operand"),
    ("ja nowhere", 1, "undefined label"),
    ("add %r0", 1, "takes 2 operand"),
    ("x:\nx:\nexit", 2, "defined twice"),
])
def test_errors_name_the_line(source, line, message):
    with pytest.raises(AsmError, match=message) as error:
        assemble(source)
    assert error.value.line == line


def test_disassembly_reassembles_to_the_same_bytes_for_random_slots():
    rng = random.Random(1)
    for _ in range(300):
        raw = bytes(rng.randrange(256) for _ in range(8 * rng.randrange(1, 12)))
        program = Program.decode(raw)
        assert assemble(disassemble_text(program)).encode() == raw


def test_disassembly_of_valid_forms_is_readable():
    from harness import isa

    for (opcode, variant), info in isa.OPCODES.items():
        if opcode == isa.LDDW:
            continue
        insn = Insn(opcode, 1, 2, variant if opcode & 7 in (4, 7) and variant in (1, 8, 16, 32)
                    else 0, variant if opcode & 0xC7 in (0xC3,) or (opcode & 0xF0) == 0xD0 else 0)
        text = disassemble_text(Program((insn,)))
        assert assemble(text).encode() == insn.encode()


def test_rept_repeats_a_block_and_nests():
    program = assemble("mov %r0, 0\n.rept 3\nadd %r0, 1\n.rept 2\nadd %r0, 10\n.endr\n.endr\nexit")
    assert len(program.insns) == 1 + 3 * 3 + 1


@pytest.mark.parametrize("source, line", [(".rept 2\nexit", 1), ("exit\n.endr", 2), ("exit\n.rept x\n.endr", 2)])
def test_rept_errors_name_the_line(source, line):
    with pytest.raises(AsmError) as error:
        assemble(source)
    assert error.value.line == line


@pytest.mark.parametrize("source, field, bounds", [
    ("mov %r0, 0x100000000", "mov immediate", "-2147483648 to 4294967295"),
    ("mov32 %r0, -2147483649", "mov32 immediate", "-2147483648 to 4294967295"),
    (f"div %r0, {2**70}", "div immediate", "-2147483648 to 4294967295"),
    (f"jeq %r0, {2**32}, +1", "jeq immediate", "-2147483648 to 4294967295"),
    (f"stw [%r10-8], {2**32}", "stw immediate", "-2147483648 to 4294967295"),
    (f"lddw %r0, {2**70}", "lddw immediate", "-9223372036854775808 to 18446744073709551615"),
    (f"lddw %r0, {-2**63 - 1}", "lddw immediate", "-9223372036854775808 to 18446744073709551615"),
    (f"call {2**70}", "call helper id", "-2147483648 to 4294967295"),
    ("ja +32768", "ja jump offset", "-32768 to 32767"),
    ("jne %r0, 1, -32769", "jne jump offset", "-32768 to 32767"),
    ("gotol 0x80000000", "gotol jump offset", "-2147483648 to 2147483647"),
    ("call local -2147483649", "call local jump offset", "-2147483648 to 2147483647"),
    ("ldxw %r0, [%r1+32768]", "ldxw memory offset", "-32768 to 32767"),
    ("lock add [%r1-32769], %r2", "lock add memory offset", "-32768 to 32767"),
    (f"ldabsw {2**32}", "ldabsw offset", "-2147483648 to 4294967295"),
    (f"ldindh %r1, {-2**31 - 1}", "ldindh offset", "-2147483648 to 4294967295"),
    (f".raw {2**64}", ".raw slot", "0 to 18446744073709551615"),
    ("lddw %r1, map:2147483648", "lddw map index", "0 to 2147483647"),
    (f".rept {2**70}\nexit\n.endr", ".rept count", "0 to 1048576"),
])
def test_every_number_is_range_checked_naming_the_field(source, field, bounds):
    """Nothing is truncated silently: the message names the field and its range."""
    with pytest.raises(AsmError) as error:
        assemble(source)
    assert error.value.line == 1
    assert error.value.message.startswith(f"{field} ") and f"out of range ({bounds})" in error.value.message


def test_edges_of_every_range_still_assemble():
    program = assemble("mov %r0, 0xffffffff\nmov %r0, -2147483648\nlddw %r0, -1\n"
                       "lddw %r0, 0xffffffffffffffff\nja -32768\nldxb %r0, [%r1-32768]\nexit")
    assert program.insns[0].imm == -1 and program.insns[1].imm == -2**31
    assert program.lddw_value(2) == program.lddw_value(4) == 2**64 - 1
    assert program.insns[6].off == -32768 and program.insns[7].off == -32768


def test_a_huge_rept_is_refused_before_any_repeating():
    """1099511627776 copies of a line would need terabytes: sized first, refused at once."""
    with pytest.raises(AsmError, match=r".rept 1025 of 1024 line\(s\) expands past 1048576 lines") as error:
        assemble("mov %r0, 0\n.rept 1025\n.rept 1024\nadd %r0, 1\n.endr\n.endr\nexit")
    assert error.value.line == 2  # the .rept whose expansion is too large
