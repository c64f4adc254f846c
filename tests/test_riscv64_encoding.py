"""The RV64 encoder (arches/riscv64/encoding.py): its formats, ranges and far branch forms.

The shared backend checks round-trip every instruction the backend emits through
capstone; these tests add what a program of ordinary size never reaches: the
immediate edges of each format and branch relaxation past 4 KiB and 1 MiB, run
under Unicorn in both directions.
"""
import pytest
import unicorn
from unicorn import riscv_const as ur

from arches.direct import Label, link
from arches.riscv64.encoding import NUMBERS, Branch, Encoded, Jump, encode

A0, A1, RA, ZERO = NUMBERS["a0"], NUMBERS["a1"], NUMBERS["ra"], NUMBERS["zero"]


@pytest.mark.parametrize("mnemonic, values, word", [
    # hand-assembled from the manual's format diagrams
    ("addi", dict(rd=A0, rs1=A0, imm=1), 0x00150513),            # I: imm 1, rs1 10, rd 10, 0x13
    ("sd", dict(rs2=A0, rs1=NUMBERS["sp"], imm=8), 0x00A13423),   # S: imm[4:0] = 8 in bits 11:7
    ("beq", dict(rs1=A0, rs2=A1, imm=16), 0x00B50863),            # B: imm[4:1] = 8 in bits 11:8
    ("bne", dict(rs1=A0, rs2=ZERO, imm=-4), 0xFE051EE3),          # B: imm[12], imm[11] and all of 10:1 set
    ("jal", dict(rd=RA, imm=-8), 0xFF9FF0EF),                     # J: imm[20|10:1|11|19:12]
    ("lui", dict(rd=A0, imm=-1), 0xFFFFF537),                     # U: 0xfffff
    ("slli", dict(rd=A0, rs1=A0, imm=63), 0x03F51513),            # 6-bit shift amount
    ("sraiw", dict(rd=A0, rs1=A0, imm=31), 0x41F5551B),           # funct7 0x20, 5-bit amount
    ("amoadd.d", dict(rd=A0, rs2=A1, rs1=NUMBERS["a2"], aq=1, rl=1), 0x06B6352F),
    ("divuw", dict(rd=A0, rs1=A0, rs2=A1), 0x02B5553B),           # M on OP-32
])
def test_known_encodings(mnemonic, values, word):
    assert encode(mnemonic, **values) == word.to_bytes(4, "little")


@pytest.mark.parametrize("mnemonic, values", [
    ("addi", dict(imm=2048)), ("addi", dict(imm=-2049)), ("sd", dict(imm=2048)),
    ("beq", dict(imm=4096)), ("beq", dict(imm=-4098)), ("beq", dict(imm=3)),
    ("jal", dict(imm=1 << 20)), ("jal", dict(imm=5)), ("slli", dict(imm=64)), ("slliw", dict(imm=32)),
    ("lui", dict(imm=1 << 19)), ("add", dict(rd=32)),
])
def test_immediates_and_registers_out_of_range_are_refused(mnemonic, values):
    with pytest.raises(ValueError):
        encode(mnemonic, **values)


def test_the_edges_of_each_range_are_accepted():
    encode("beq", imm=4094), encode("beq", imm=-4096), encode("jal", imm=(1 << 20) - 2)
    encode("jal", imm=-(1 << 20)), encode("addi", imm=2047), encode("addi", imm=-2048)
    encode("lui", imm=(1 << 19) - 1), encode("lui", imm=-(1 << 19))


class Nops:
    """``count`` nops: the distance a branch must cover."""

    def __init__(self, count):
        self.target, self.text, self.sizes = None, f"{count} nops", (4 * count,)
        self.count = count

    def reaches(self, form, displacement):
        return True

    def encode(self, form, displacement):
        return encode("addi", rd=ZERO, rs1=ZERO, imm=0) * self.count


def returns(value):
    """a0 = value; ret"""
    return [Encoded("addi", dict(rd=A0, rs1=ZERO, imm=value)), Encoded("jalr", dict(rd=ZERO, rs1=RA, imm=0))]


def run(code, a0):
    """Run ``code`` at 0x100000 with a0 set, until it returns to 0x900000; a0 afterwards."""
    uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64)
    uc.mem_map(0x100000, 0x400000)
    uc.mem_map(0x900000, 0x1000)
    uc.mem_write(0x100000, code)
    uc.reg_write(ur.UC_RISCV_REG_A0, a0)
    uc.reg_write(ur.UC_RISCV_REG_RA, 0x900000)
    uc.emu_start(0x100000, 0x900000, count=100)
    return uc.reg_read(ur.UC_RISCV_REG_A0)


# (nops between branch and target, bytes of the form link() must choose): B-type reaches
# -4096..4094 bytes; the inverted branch's JAL, 4 bytes on, -2**20..2**20-2; past that auipc+jalr
FORWARD = [(1, 4), (1020, 4), (1021, 8), (262_140, 8), (262_141, 12)]
BACKWARD = [(1, 4), (1022, 4), (1023, 8), (262_141, 8), (262_142, 12)]


@pytest.mark.parametrize("nops, size", FORWARD)
def test_a_forward_branch_takes_the_shortest_form_that_lands(nops, size):
    # bne a0, zero, far: not taken -> 7, taken -> 42
    items = [Branch("bne", A0, ZERO, "far"), *returns(7), Nops(nops), Label("far"), *returns(42)]
    code, listing, labels = link(items)
    assert labels["far"] == size + 8 + 4 * nops
    assert run(code, 1) == 42 and run(code, 0) == 7


@pytest.mark.parametrize("nops, size", BACKWARD)
def test_a_backward_branch_and_a_jump_land(nops, size):
    # j down; back: a0 = 42; ret; <nops>; down: beq a0, zero, back; a0 = 7; ret
    items = [Jump(ZERO, "down"), Label("back"), *returns(42), Nops(nops), Label("down"),
             Branch("beq", A0, ZERO, "back"), *returns(7)]
    code, _, labels = link(items)
    assert len(code) == labels["down"] + size + 8
    assert run(code, 0) == 42 and run(code, 1) == 7


@pytest.mark.parametrize("nops", [10, 300_000])
def test_a_far_call_links_ra_and_returns(nops):
    # the caller saves ra in a1, calls a function past the nops, adds 1 to its result
    items = [Encoded("addi", dict(rd=A1, rs1=RA, imm=0)), Jump(RA, "function"),
             Encoded("addi", dict(rd=A0, rs1=A0, imm=1)), Encoded("jalr", dict(rd=ZERO, rs1=A1, imm=0)),
             Nops(nops), Label("function"), *returns(41)]
    code, _, _ = link(items)
    assert len(code) == 4 * (nops + 5) + (8 if nops > 100_000 else 4)  # jal ra, or auipc ra + jalr ra
    assert run(code, 0) == 42
