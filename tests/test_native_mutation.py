"""Native-level mutation: the operators on text and records, the runner's verdicts, the equivalence probe."""
import random

import pytest

import arches
from harness import isa
from harness.cases.asm import assemble
from harness.running.coverage import program_forms
from harness.tools import native_ops
from harness.tools.equivalence import check, probe_program
from harness.tools.native_mutate import (CorpusIndex, NativeMutant, pool, run_mutant, sample,
                                         score_table)
from harness.tools.native_ops import Site

ARCHES = arches.names()


def chunks_of(arch, source):
    """The chunk the backend emits for every instruction of ``source`` (slot -> chunk)."""
    captured = {}

    def record(slot, insn, chunk):
        captured[slot] = native_ops.flatten(chunk)
        return chunk

    arches.get(arch).translate(assemble(source), record)
    return captured


def text(items):
    return [item if isinstance(item, str) else item.text for item in items]


def test_text_operators_on_an_x86_chunk():
    chunk = ["cmp rax, rdx", "jg L10"]
    assert native_ops.apply(chunk, Site("drop", "cmp", 0), "x86_64") == ["jg L10"]
    assert native_ops.apply(chunk, Site("swap", "cmp", 0), "x86_64") == ["jg L10", "cmp rax, rdx"]
    assert native_ops.apply(chunk, Site("condition", "jg", 0, ("mnemonic", "ja")), "x86_64")[1] == "ja L10"
    assert native_ops.apply(chunk, Site("width", "cmp", 0, ("registers", "rax")), "x86_64")[0] == "cmp eax, edx"
    assert native_ops.apply(chunk, Site("register", "cmp", 0, (1, "rbx")), "x86_64")[0] == "cmp rax, rbx"
    moved = native_ops.apply(["mov eax, dword ptr [rbp - 0x8]"], Site("immediate", "mov", 0, (4, "+1")), "x86_64")
    assert moved == ["mov eax, dword ptr [rbp - 0x7]"]  # the displacement -8 became -7
    # a site whose instruction the chunk does not have leaves it alone
    assert native_ops.apply(chunk, Site("drop", "cmp", 1), "x86_64") is chunk


def test_ppc64_bare_numbers_are_registers_or_immediates_by_position():
    insn = native_ops.TextInsn("lhz 6, 4096(3)", native_ops.dialect("ppc64"))
    assert [(token.kind, token.value if token.kind == "imm" else token.text) for token in insn.tokens] == \
        [("reg", "6"), ("imm", 4096), ("reg", "3")]
    insn = native_ops.TextInsn("clrldi 8, 8, 32", native_ops.dialect("ppc64"))
    assert [token.kind for token in insn.tokens] == ["reg", "reg", "imm"]


def test_record_operators_rebuild_s390x_and_riscv_instructions():
    s390x = chunks_of("s390x", "mov %r0, 1\nmov %r3, 2\nadd32 %r0, %r3\nexit")[2]
    assert text(s390x) == ["ar r1=14, r2=4", "llgfr r1=14, r2=14"]
    assert text(native_ops.apply(s390x, Site("extension", "llgfr", 0), "s390x")) == ["ar r1=14, r2=4"]
    assert text(native_ops.apply(s390x, Site("width", "ar", 0, ("mnemonic", "agr")), "s390x"))[0] == \
        "agr r1=14, r2=4"
    riscv = chunks_of("riscv64", "mov %r0, 1\nmov %r3, 2\njsgt %r0, %r3, +1\nmov %r0, 2\nexit")[2]
    assert text(native_ops.apply(riscv, Site("condition", "blt", 0, ("strictness",)), "riscv64")) == \
        ["bge a5, a2 -> L4"]  # r3 < r0 became r0 >= r3: taken on equality too
    with pytest.raises(ValueError):  # an immediate the format cannot hold: a stillborn mutant
        native_ops.apply([native_ops.flatten(chunks_of("riscv64", "mov %r0, 1\nlsh %r0, 63\nexit")[1])[0]],
                         Site("immediate", "slli", 0, ("imm", "+1")), "riscv64")


@pytest.mark.parametrize("arch, source, slot", [
    ("x86_64", "mov %r0, 1\nmov32 %r0, %r0\nexit", 1),
    ("arm64", "mov %r0, 1\nle32 %r0\nexit", 1),
    ("s390x", "mov %r0, 1\nadd32 %r0, 1\nexit", 1),
    ("ppc64", "mov %r0, 1\nadd32 %r0, 1\nexit", 1),
    ("sparc64", "mov %r0, 1\nadd32 %r0, 1\nexit", 1),
    ("x86_32", "mov %r0, 1\nadd32 %r0, 1\nexit", 1),
    ("arm32", "mov %r0, 1\nadd32 %r0, 1\nexit", 1),
    ("mips64", "mov %r0, 1\nadd32 %r0, 1\nexit", 1),
    ("riscv64", "mov %r0, 1\nadd32 %r0, 1\nexit", 1),
])
def test_every_target_has_a_zero_extension_the_extension_operator_drops(arch, source, slot):
    chunk = chunks_of(arch, source)[slot]
    found = [site for site in native_ops.sites(chunk, arch, random.Random(0)) if site.operator == "extension"]
    assert found, text(chunk)
    shorter = native_ops.apply(chunk, found[-1], arch)
    assert len(shorter) < len(chunk)


def test_sampling_is_seeded_and_spreads_over_the_operators():
    index = CorpusIndex.load(["corpus/alu32/add32_imm_wraps_and_zero_extends.data",
                              "corpus/alu64/add_reg_carries_into_upper_half.data"])
    candidates = pool("x86_64", index, seed=3)
    first, again = sample(candidates, 12, 3), sample(candidates, 12, 3)
    assert [m.ident for m in first] == [m.ident for m in again]
    assert len({m.site.operator for m in first}) >= 4


def test_a_mutant_is_killed_stillborn_or_equivalent_as_it_deserves():
    paths = ["corpus/alu32/add32_imm_wraps_and_zero_extends.data", "corpus/alu32/add32_reg_ignores_upper_halves.data"]
    index = CorpusIndex.load(paths)
    form = (isa.ALU | isa.ADD | isa.X, 0)
    assert form in set().union(*(program_forms(program) for _, program, _ in index.cases))
    killed = run_mutant(NativeMutant("x86_64", form, Site("width", "add", 0, ("registers", "eax"))), index)
    assert killed.verdict == "killed" and killed.killed_by in paths
    bad = run_mutant(NativeMutant("x86_64", form, Site("width", "add", 0, ("mnemonic", "addd"))), index)
    assert bad.verdict == "stillborn" and "no case's code assembles" in bad.evidence
    table = score_table([killed, bad])
    assert "x86_64" in table and "100.0%" in table


def test_the_probe_finds_a_witness_and_shows_agreement():
    program = assemble("mov %r7, 7\nmov %r1, 3\nmov %r3, 5\nsmod32 %r7, %r1\nmov %r0, %r3\nexit")
    form = isa.opcode_key(program.insns[3])
    import arches as registry
    from harness.tools.native_mutate import MutatedBackend

    # keep rsi instead of rdx around the division: r3 (rdx) comes back clobbered
    clobber = NativeMutant("x86_64", form, Site("register", "mov", 2, (1, "rsi")))
    verdict = check(clobber, [program], MutatedBackend(registry.get("x86_64"), clobber).clone)
    assert not verdict.equivalent and "NOT equivalent" in verdict.evidence and "smod32 %r7, %r1" in verdict.evidence
    # save rax into r10 after loading the dividend's copy instead of before: independent moves
    swap = NativeMutant("x86_64", form, Site("swap", "mov", 1))
    verdict = check(swap, [program], MutatedBackend(registry.get("x86_64"), swap).clone)
    assert verdict.equivalent and "agree on all" in verdict.evidence


def test_probes_exist_for_memory_jump_and_alu_forms_and_validate():
    for source in ("ldxh %r4, [%r1+4096]", "stxw [%r10-8], %r0", "jsgt %r0, %r3, +1", "lsh32 %r2, %r5",
                   "lock fetch add [%r10-16], %r2", "ldindb %r3, 0", "call 104", "be16 %r0"):
        insn = assemble(source + "\nexit" if not source.startswith("jsgt") else source + "\nexit\nexit").insns[0]
        assert probe_program(insn) is not None, source
