"""The MIPS64 backends' own guarantees (the shared checks are in backend_checks.py):
conditional branches beyond the 16-bit reach are relaxed, and keystone emits exactly
the words written (no delay-slot nops or macro expansions of its own)."""
import re

import pytest

import arches
from arches.base import AssemblyError
from arches.mips64.assembly import Branch, relax
from harness import layout
from harness.cases.asm import assemble
from harness.running.emulator import engine_for

TARGETS = ("mips64", "mips64el")
FAR = 30_000  # "add32 %r0, k" is daddiu + dext: 240,000 bytes, past beq's +-128 KiB (and below
# the 32,767 instructions an eBPF jump reaches)


def repeated(count: int, line: str) -> str:
    return f".rept {count}\n{line}\n.endr\n"


# Expected r0 worked out by hand: each add runs once per pass.
FAR_PROGRAMS = {
    "jeq taken forward": (f"mov %r0, 7\njeq %r0, 7, far\n{repeated(FAR, 'add32 %r0, 3')}far:\nexit", 7),
    "jne not taken forward": (f"mov %r0, 7\njne %r0, 7, far\n{repeated(FAR, 'add32 %r0, 3')}far:\nexit", 7 + 3 * FAR),
    "jsgt32 taken backward twice": ("mov %r0, 0\nmov %r1, 2\ntop:\n" + repeated(FAR, "add32 %r0, 1")
                                    + "sub %r1, 1\njsgt32 %r1, 0, top\nexit", 2 * FAR),
}


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("program", FAR_PROGRAMS, ids=str)
def test_a_branch_beyond_128_kib_is_relaxed_and_reaches_its_target(name, program):
    backend = arches.get(name)
    source, expected = FAR_PROGRAMS[program]
    native = backend.translate(assemble(source))
    assert "Lfar" in native.assembly, "the far branch kept its short form"
    assert engine_for(backend).run(native).r0 == expected


@pytest.mark.parametrize("name", TARGETS)
def test_a_near_branch_keeps_its_short_form(name):
    native = arches.get(name).translate(assemble(f"mov %r0, 1\njeq %r0, 1, out\n{repeated(100, 'add32 %r0, 3')}out:\nexit"))
    assert "Lfar" not in native.assembly


def branch_over(words: int, backward: bool) -> list[str]:
    """A beqz to label L1 over ``words`` nops: L1 before the nops when ``backward``."""
    nops = "\n".join(["nop"] * words)
    branch = Branch("beqz", ("$12",), "L1")
    return ["L1:", nops, branch] if backward else [branch, nops, "L1:", "nop"]


# (nops, backward) at the last reachable distance from the delay slot: forward
# 4 + 4 * nops = 0x1fffc, backward -(4 * nops + 4) = -0x20000.
EDGES = {"forward": (0x7FFE, False), "backward": (0x7FFF, True)}


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("edge", EDGES)
def test_the_reach_ends_exactly_where_the_16_bit_offset_does(name, edge):
    """At the last reachable distance keystone encodes the short branch right (capstone
    decodes it to the label); one word further the branch is relaxed."""
    backend = arches.get(name)
    words, backward = EDGES[edge]
    for extra, relaxed in ((0, False), (1, True)):
        items = branch_over(words + extra, backward)
        lines, offsets = relax(items)
        assert any("Lfar" in line for line in lines) == relaxed
        code, _, _ = backend.assemble(items, ["L1"])
        if not relaxed:
            at = 4 * (words + extra) if backward else 0
            decoded = next(backend.disassembler().disasm(code[at:at + 4], layout.CODE_BASE + at))
            assert decoded.mnemonic == "beqz"
            assert int(decoded.op_str.split(", ")[-1], 0) == layout.CODE_BASE + offsets["L1"], decoded.op_str


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("line", ("li $4, 0x12345678", "ddivu $4, $5", "dli $4, 0x123456789"))
def test_keystone_expanding_a_line_is_an_error_not_silently_longer_code(name, line):
    """Macros keystone expands (lui+ori, a guarded divide, a 64-bit build-up) would break
    bpf_to_native and the branch sizes: the backend refuses them, naming the words."""
    backend = arches.get(name)
    program = assemble("mov %r0, 1\nadd %r0, 2\nexit")
    with pytest.raises(AssemblyError, match="keystone emitted"):
        backend.translate(program, lambda index, insn, chunk: [line] if index == 1 else chunk)


@pytest.mark.parametrize("name", TARGETS)
def test_delay_slots_are_kept_as_written(name):
    """Without .set noreorder keystone adds a nop after every branch; with it, `jr; nop` is
    two words and a filled slot stays in the slot."""
    backend = arches.get(name)
    native = backend.translate(assemble("mov %r0, 1\nexit"))
    listing = backend.disassemble(native.code, layout.CODE_BASE)
    jal = next(index for index, line in enumerate(listing) if ": jal " in line)
    assert "lui $fp" in listing[jal + 1]  # r10 = the stack top, set in the delay slot of the call
    assert native.bpf_to_native[2] - native.bpf_to_native[1] == 8  # exit: jr $ra; nop


@pytest.mark.parametrize("chunk, complaint", [
    (["jr $31"], "holds `L"),  # the next instruction's label would follow the jump
    (["j L0", "jr $31", "nop"], "holds `jr $31`"),
    (["beqz $12, L0", "b L0", "nop"], "holds `b L0`"),
])
def test_a_branch_without_a_plain_delay_slot_is_refused(chunk, complaint):
    """The ISA leaves a branch in a delay slot UNPREDICTABLE; a label there means the slot
    also runs as the first instruction of something else: both are backend bugs."""
    program = assemble("mov %r0, 1\nadd %r0, 2\nexit")
    with pytest.raises(AssemblyError, match=re.escape(complaint)):
        arches.get("mips64").translate(program, lambda index, insn, chunk_: chunk if index == 1 else chunk_)
