"""Long programs (up to the kernel's 1,000,000 instructions): generated, run on every
target, costs growing linearly, memory held bounded, too-long code refused clearly.

The big figures (10,000 to 1,000,000 slots, every phase and target) come from
``python -m harness bench --huge``; here only what stays fast.
"""
from __future__ import annotations

import time

import pytest

import arches
from harness import isa
from harness.isa import Insn, Program
from harness.oracle.interpreter import Interpreter
from harness.oracle.validator import MAX_SLOTS, ValidationError, validate
from harness.running import conformance
from harness.running.conformance import all_targets, run_item
from harness.running.memo import weighted_cache
from harness.tools import bench_long
from harness.tools.long_program import STATION_EVERY, generate, write_case


@pytest.mark.parametrize("slots", [16, 17, 100, STATION_EVERY + 10, 2 * STATION_EVERY + 500])
def test_generated_programs_have_the_size_asked_and_count_their_checks(slots):
    program, checks = generate(slots)
    assert len(program) == slots
    validate(program)
    outcome = Interpreter(program, "little").run(b"", 1_000_000, None, 10.0)
    assert (outcome.kind, outcome.r0) == ("return", checks)  # the generator's count, not the interpreter's
    assert program.insns[0].opcode == isa.JMP32 | isa.JA and isa.jump_target(program.insns[0], 0) == slots - 1


def test_the_validator_takes_the_kernels_limit():
    assert MAX_SLOTS == 1_000_000
    with pytest.raises(ValidationError, match="too long"):
        validate(Program((Insn(isa.ALU64 | isa.MOV | isa.K),) * MAX_SLOTS + (Insn(isa.JMP | isa.EXIT),)))


@pytest.fixture(scope="module")
def long_case(tmp_path_factory) -> str:
    """Two failure stations apart, far branches on every target with short conditional ones."""
    return str(write_case(tmp_path_factory.mktemp("long"), STATION_EVERY + 1000))


@pytest.mark.parametrize("target", all_targets())
def test_a_long_program_passes_on_every_target(long_case, target):
    result = run_item(long_case, target)
    assert result.status == "pass", result.detail


def _cpu_per_slot(slots: int) -> float:
    """CPU seconds per slot to generate nothing but validate, interpret and translate for x86_64."""
    program, _ = generate(slots)
    backend = arches.get("x86_64")
    best = float("inf")
    for _ in range(2):
        backend.clear_cache()
        started = time.process_time()
        validate(program)
        Interpreter(program, "little").run(b"", 1_000_000, None, 10.0)
        backend.compile(program)
        best = min(best, time.process_time() - started)
    return best / slots


def test_cost_grows_linearly():
    """8x the slots, at most 3x the CPU per slot (a quadratic phase would take 8x). CPU time:
    the machine may be shared. The figures per phase and target: harness bench --huge."""
    small, large = _cpu_per_slot(1000), _cpu_per_slot(8000)
    assert large <= 3 * small, f"{small * 1e6:.1f} us per slot at 1,000 slots, {large * 1e6:.1f} at 8,000"


def test_code_longer_than_a_targets_branches_reach_is_refused(monkeypatch, long_case):
    backend = arches.get("ppc64")
    backend.clear_cache()
    monkeypatch.setattr(type(backend), "longest_branch_reach", 1 << 16)
    result = run_item(long_case, "ppc64")
    backend.clear_cache()
    assert result.status == "skip"
    assert "bytes of native code: longer than its longest branch reaches (+-0.0625 MiB)" in result.detail


def test_the_case_cache_holds_a_bounded_weight_and_always_the_newest():
    @weighted_cache(lambda value: value, max_weight=10, max_entries=100)
    def weigh(size: int) -> int:
        return size

    weigh(4), weigh(5)
    assert (weigh.cache_info().entries, weigh.cache_info().weight) == (2, 9)
    weigh(6)  # 15: the oldest go until it fits
    assert (weigh.cache_info().entries, weigh.cache_info().weight) == (1, 6)
    weigh(20)  # heavier than the whole budget: kept alone
    assert (weigh.cache_info().entries, weigh.cache_info().weight) == (1, 20)
    weigh(20)
    assert weigh.cache_info().hits == 1
    assert conformance.CACHED_SLOTS <= MAX_SLOTS  # one huge case at a time at most, about 170 MB


def test_bench_huge_reports_every_target_and_a_verdict(capsys):
    figures = bench_long.main(["interp", "x86_64"], (200, 800), repeat=1)
    assert figures["all_passed"]
    assert set(figures["linear"]) == {"shared", "x86_64"}
    assert {"translate", "assemble", "emulate", "cpu"} <= set(figures["sizes"]["800"]["x86_64"])
    assert "800 slots" in capsys.readouterr().out
