"""Encoding and decoding of the 8-byte wire format (RFC 9669 section 3)."""
import random

import pytest

from harness import isa
from harness.isa import Insn, Program


def test_known_encoding_of_mov_imm():
    # b7 = ALU64|MOV|K; dst r0; imm 1, little-endian wire order.
    assert Insn(0xB7, 0, 0, 0, 1).encode() == bytes.fromhex("b700000001000000")


def test_register_nibbles_and_signed_fields():
    insn = Insn.decode(bytes.fromhex("7b1af8ff00000000"))  # stxdw [r10-8], r1
    assert (insn.opcode, insn.dst, insn.src, insn.off, insn.imm) == (0x7B, 10, 1, -8, 0)


@pytest.mark.parametrize("key", sorted(isa.OPCODES), ids=lambda key: isa.OPCODES[key].mnemonic)
def test_every_form_round_trips(key):
    opcode, variant = key
    insn = Insn(opcode, 3, 4, -2, -123456)
    raw = insn.encode()
    assert len(raw) == 8
    assert Insn.decode(raw) == insn


def test_random_programs_reencode_byte_identically():
    rng = random.Random(7)
    for _ in range(200):
        raw = bytes(rng.randrange(256) for _ in range(8 * rng.randrange(1, 20)))
        assert Program.decode(raw).encode() == raw


def test_lddw_pair_splits_value_into_two_slots():
    first, second = isa.lddw_pair(2, 0x1122334455667788)
    program = Program((first, second))
    assert program.lddw_value(0) == 0x1122334455667788
    assert first.opcode == 0x18 and second.opcode == 0
    assert program.instruction_starts() == [0]


def test_program_length_must_be_whole_slots():
    with pytest.raises(ValueError, match="multiple of 8"):
        Program.decode(b"\x95" + bytes(6))


def test_describe_distinguishes_variants():
    assert isa.describe(Insn(0x3F, off=1)).mnemonic == "sdiv"
    assert isa.describe(Insn(0xBF, off=16)).mnemonic == "movsx1664"
    assert isa.describe(Insn(0xD7, imm=32)).mnemonic == "bswap32"
    assert isa.describe(Insn(0xDB, imm=isa.ATOMIC_CMPXCHG)).mnemonic == "lock cmpxchg"
    assert isa.describe(Insn(0x3F, off=2)) is None
    assert isa.describe(Insn(0xFF)) is None


def test_conformance_groups_cover_the_rfc_groups():
    groups = {info.group for info in isa.OPCODES.values()}
    assert groups == {"base32", "base64", "atomic32", "atomic64", "divmul32", "divmul64", "packet"}
