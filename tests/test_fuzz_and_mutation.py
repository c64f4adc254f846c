"""The program generator, the fuzzer's shrinker, and mutation testing, on short fixed-seed runs."""
from pathlib import Path

import pytest
from hypothesis import given, settings

import arches
from harness import isa
from harness.cases.asm import assemble, disassemble_text
from harness.running.conformance import run_item
from harness.cases.corpus import find_case_files, parse_case
from harness.running.explain import explain_failure
from harness.tools.fuzz import (differs, finding_text, fuzz, remove_instruction, remove_slots, shrink,
                                write_finding, Mismatch)
from harness.tools.generate import FAR_OFFSETS, generate, programs
from harness.oracle.interpreter import interpret
from harness.tools.mutate import CATALOGUE, EXPLAINED, apply, mutated_backend, run_mutant
from harness.oracle.validator import ValidatorConfig, validate

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
ARCHES = arches.names()
MUTANTS = {mutant.name: mutant for mutant in CATALOGUE}


def test_generated_programs_are_valid_and_deterministic():
    for seed in range(200):
        generated = generate(seed)
        validate(generated.program, ValidatorConfig(map_count=len(generated.maps)))
        assert generate(seed).program == generated.program
    forms = {isa.opcode_key(insn) for seed in range(200) for insn in generate(seed).program.insns}
    assert len(forms & set(isa.OPCODES)) > 120  # every class, most forms


def test_the_generator_reaches_what_the_corpus_can_express():
    """LD_ABS/LD_IND, helper and local calls, maps, atomics, far jumps, encoding-edge offsets, and
    compared registers read again after the jump."""
    seen = set()
    for seed in range(300):
        generated = generate(seed)
        insns = generated.program.insns
        for index in generated.program.instruction_starts():
            insn = insns[index]
            if insn.klass == isa.LD and insn.mode in (isa.ABS, isa.IND):
                seen.add("abs" if insn.mode == isa.ABS else "ind")
            if insn.opcode == isa.JMP | isa.CALL:
                seen.add({0: "helper", 1: "local"}[insn.src] if insn.imm > 3 or insn.src else "map helper")
            if insn.opcode == isa.LDDW and insn.src == isa.LDDW_MAP_FD:
                seen.add("map")
            if insn.klass == isa.STX and insn.mode == isa.ATOMIC:
                seen.add("atomic")
            if insn.klass in (isa.LDX, isa.ST, isa.STX) and insn.off in FAR_OFFSETS and insn.off in (4096, -4097):
                seen.add("edge offset")
            target = isa.jump_target(insn, index)
            if target is not None and target - index > 1000:
                seen.add("far jump")
            if insn.klass in (isa.JMP, isa.JMP32) and insn.off == 0 and insn.op not in (isa.CALL, isa.EXIT) \
                    and insns[index + 1].opcode == isa.ALU64 | isa.ADD | isa.X and insns[index + 1].src == insn.dst:
                seen.add("reuse after compare")
        if generated.maps:
            assert len(generated.memory) == 64 or len(generated.memory) == 0x10000
    assert seen >= {"abs", "ind", "helper", "local", "map helper", "map", "atomic", "edge offset", "far jump",
                    "reuse after compare"}, seen


def test_findings_are_numbered_never_overwritten_and_say_what_differs(tmp_path):
    program = assemble("mov %r0, 1\nadd32 %r0, 2\nexit")
    expected = interpret(program, b"", "little")
    from harness.oracle.outcome import Outcome
    same_r0 = Outcome("return", 3, expected.memory, expected.stack[:-1] + b"\x01")
    mismatch = Mismatch("x86_64", 5, program, b"", expected, same_r0, 9)
    (tmp_path / "0007-old.data").write_text("-- asm\nexit\n")
    path, written = write_finding(mismatch, tmp_path)
    assert written and path.name.startswith("0008-x86_64-stack")
    again, written_again = write_finding(mismatch, tmp_path)
    assert again == path and not written_again  # the same signature is on file already
    text = path.read_text()
    assert "# signature: x86_64 | stack | add32 (imm)" in text
    assert "stack at 0x2000ffff differs: interpreter" in text


@settings(max_examples=25, deadline=None)
@given(programs(size=12))
def test_the_hypothesis_strategy_draws_valid_programs(generated):
    from harness.oracle.maps import MapSet, resolve_map_loads

    validate(generated.program, ValidatorConfig(map_count=len(generated.maps)))
    maps = MapSet(list(generated.maps), "little") if generated.maps else None
    program = resolve_map_loads(generated.program, maps) if maps else generated.program
    assert interpret(program, generated.memory, "little", 100_000, maps).kind in ("return", "fault")


def test_removing_an_instruction_repairs_jumps():
    program = assemble("mov %r0, 1\njeq %r0, 1, skip\nmov %r0, 2\nmov %r0, 3\nskip:\nadd %r0, 10\nexit")
    smaller = remove_instruction(program, 2)
    assert disassemble_text(smaller).splitlines()[1] == "jeq %r0, 1, +1"
    assert interpret(smaller, b"", "little").r0 == 11


def test_shrinking_keeps_the_property_and_gets_small():
    generated = generate(7)
    target = interpret(generated.program, generated.memory, "little").r0 & 0xF
    keeps = lambda p, m: (lambda o: o.kind == "return" and o.r0 & 0xF == target)(interpret(p, m, "little"))  # noqa
    small, _ = shrink(generated.program, generated.memory, keeps)
    assert keeps(small, generated.memory) and len(small.insns) < len(generated.program.insns) // 3


def test_a_far_program_crosses_its_never_run_block_both_ways():
    small = generate(3, far=1000)
    validate(small.program)
    assert generate(3, far=1000).program == small.program
    slots = len(small.program.insns)
    assert slots > 1000 and len(generate(3).program.insns) < slots - 900
    # the block is crossed by gotol forward and by a conditional jump (or gotol) backward
    jumps = [(index, isa.jump_target(insn, index)) for index, insn in enumerate(small.program.insns)
             if insn.op != isa.CALL and isa.jump_target(insn, index) is not None]
    assert any(target - index > 1000 for index, target in jumps)
    assert any(index - target > 1000 for index, target in jumps)
    assert interpret(small.program, small.memory, "little", 100_000).kind in ("return", "fault")


def test_removing_a_run_of_slots_redirects_jumps_into_it():
    program = assemble("mov %r0, 1\njeq %r0, 1, inside\nmov %r0, 2\ninside:\nmov %r0, 3\nadd %r0, 10\nexit")
    smaller = remove_slots(program, 2, 4)
    assert disassemble_text(smaller).splitlines()[1] == "jeq %r0, 1, +0"
    assert interpret(smaller, b"", "little").r0 == 11


def test_shrinking_a_far_program_drops_its_block_in_runs():
    """10,000 filler slots go in a few dozen checks, not one check per slot."""
    generated = generate(5, far=10_000)
    checks = []

    def keeps(program, memory):  # still makes a helper call 102 (the filler is full of them)
        checks.append(len(program.insns))
        return any(insn.opcode == isa.JMP | isa.CALL and insn.src == 0 and insn.imm == 102
                   for insn in program.insns)

    small, _ = shrink(generated.program, generated.memory, keeps, attempts=1000)
    assert keeps(small, generated.memory) and len(small.insns) < 30
    assert sum(1 for size in checks if size > 1000) < 40, checks


def test_shrinking_stops_at_its_time_bound():
    generated = generate(7)
    checks = []
    small, _ = shrink(generated.program, generated.memory, lambda p, m: checks.append(p) or True, seconds=0)
    assert small == generated.program and not checks


def test_far_fuzzing_runs_more_than_1mib_of_arm64_code_like_the_interpreter():
    """``harness fuzz --far 30000``: every program's arm64 code is past b.cond's reach."""
    stats = fuzz(["arm64"], seed=9, count=1, far=30_000)
    assert stats.programs == 1 and not stats.mismatches, [m.detail for m in stats.mismatches]
    assert len(arches.get("arm64").compile(generate(9, far=30_000).program).code) > 1 << 20


def test_rewrites_relink_jumps_around_inserted_instructions():
    case = parse_case("x.data", (CORPUS / "programs" / "gcd_euclid_64bit.data").read_text())
    padding = lambda insn, _: ([isa.Insn(isa.ALU64 | isa.MOV | isa.X, 9, 9, 0, 0)], insn, [])  # noqa: E731
    padded = apply(case.program, padding, "little")
    assert len(padded.insns) > len(case.program.insns)
    assert interpret(padded, case.memory, "little").r0 == case.result


def test_catalogue_has_thirty_bug_classes_at_least():
    assert len(CATALOGUE) >= 30 and len({m.bug_class for m in CATALOGUE}) >= 10


@pytest.mark.parametrize("arch", ARCHES)
def test_a_broken_backend_fails_the_suite_with_a_readable_diff(arch):
    """Drop the zero-extension of 32-bit add: the corpus must notice, and say where."""
    broken = mutated_backend(arches.get(arch), MUTANTS["add32-no-zext"])
    case = str(CORPUS / "families" / "alu32" / "add32_x_boundaries.data")
    assert run_item(case, arch).status == "pass"
    result = run_item(case, arch, backend=broken)
    assert result.status == "fail"
    text = explain_failure(case, result)
    assert "first difference in stack at 0x2000fff8" in text or "first difference in r0" in text
    assert f"each followed by the {arch} code it became" in text and "add32" in text
    # the failing pair is named with its operands and both values, not left to a stack address
    first = next(line for line in text.splitlines() if line.startswith("  pair "))
    assert first.startswith("  pair 1 ([r10-8]) differs: add32 %r4, %r7 with %r4 = 0xa5a5a5a500000001, "
                            "%r7 = 0x5a3c5a3c00000000: expected 0x1, got 0x"), first
    assert "    <- pair 1" in text  # the store of pair 1 is marked in the listing


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("name", ["div-by-zero-keeps-dst", "jmp32-reads-upper-half", "atomic-fetch-returns-new",
                                  "le-be-confused", "helper-args-swapped"])
def test_sample_mutants_are_killed_by_the_corpus(arch, name):
    cases = [str(path) for path in find_case_files([CORPUS])]  # a default run's cases, as harness mutate
    result = run_mutant(MUTANTS[name], arch, cases)
    assert result.killed or (name, arch) in EXPLAINED, result


@pytest.mark.parametrize("arch", ARCHES)
def test_fuzzing_finds_and_shrinks_a_planted_bug(arch, monkeypatch):
    broken = mutated_backend(arches.get(arch), MUTANTS["sub32-no-zext"])
    monkeypatch.setattr(arches, "get", lambda name: broken)
    stats = fuzz([arch], seed=1, count=40)
    assert stats.mismatches, "40 programs should hit a 32-bit sub"
    mismatch = stats.mismatches[0]
    assert len(mismatch.program.insns) < mismatch.original_size
    case = parse_case("finding.data", finding_text(mismatch))
    assert any(insn.opcode == isa.ALU | isa.SUB | isa.X or insn.opcode == isa.ALU | isa.SUB | isa.K
               for insn in case.program.insns)


@pytest.mark.parametrize("arch", ARCHES)
def test_a_short_fuzz_run_finds_nothing_on_the_real_backend(arch):
    stats = fuzz([arch], seed=12345, count=30)
    assert stats.programs == 30 and not stats.mismatches, [finding_text(m) for m in stats.mismatches]


def test_mismatches_are_grouped_by_signature(monkeypatch):
    broken = mutated_backend(arches.get("riscv64"), MUTANTS["sub32-no-zext"])
    monkeypatch.setattr(arches, "get", lambda name: broken)
    stats = fuzz(["riscv64"], seed=1, count=40)
    assert stats.raw_mismatches >= len(stats.mismatches) >= 1
    assert len({m.signature for m in stats.mismatches}) == len(stats.mismatches)
    assert sum(stats.groups.values()) <= 3 * len({(t, w) for t, w, _ in stats.groups})
