"""Whatever one case does, it ends as that case's result, within its time bounds.

In-process checks of :func:`harness.running.conformance.run_item`: exceptions of any
type become one-line ``error`` results naming the file and the phase; every phase
ends within its bound with a ``limit`` reason naming it; a case that promises a
result must return on every target; failure reports never print a whole huge listing.
"""
import time

import pytest

from harness.running import conformance
from harness.running.conformance import ERROR, FAIL, PASS, all_targets, run_item
from harness.running.explain import LISTING_LINES, ebpf_listing, explain_failure
from harness.running.limits import PhaseTimeout, time_bound

ENDLESS = "-- asm\nloop:\nja loop\nexit\n"


def case_file(tmp_path, text: str, name: str = "case.data") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("exception", [MemoryError(), RecursionError("maximum recursion depth exceeded"),
                                       OverflowError("int too large"), SystemExit(3), KeyError("x")])
def test_any_exception_in_validate_is_the_items_error(monkeypatch, tmp_path, exception):
    def broken_validate(*args, **kwargs):
        raise exception

    monkeypatch.setattr(conformance, "validate", broken_validate)
    path = case_file(tmp_path, "-- asm\nmov %r0, 1\nexit\n-- result\n1\n")
    for target in ("interp", "x86_64"):
        result = run_item(path, target)
        assert result.status == ERROR
        assert result.detail.startswith(f"{path}: internal error in validate: {type(exception).__name__}")
        assert "raised at tests/test_bounds.py:" in result.detail and "\n" not in result.detail


def test_a_backend_that_raises_is_an_error_naming_the_phase_and_target(tmp_path):
    class Exploding:
        name, byte_order, _cache = "x86_64", "little", {}

        def compile_cached(self, program):
            raise OverflowError("cannot encode")

    path = case_file(tmp_path, "-- asm\nmov %r0, 1\nexit\n-- result\n1\n")
    result = run_item(path, "x86_64", backend=Exploding())
    assert result.status == ERROR
    assert result.detail.startswith(f"{path}: internal error in translate on x86_64: OverflowError: cannot encode")


def test_time_bound_interrupts_python_code_and_restores_the_timer():
    started = time.monotonic()
    with pytest.raises(PhaseTimeout, match="time limit: validate took longer than 0.2 s"):
        with time_bound("validate", 0.2):
            count = 0
            while True:
                count += 1
    assert time.monotonic() - started < 2
    with time_bound("parse", 0.2):  # a finished block leaves no alarm behind
        pass
    time.sleep(0.3)


def test_a_validator_that_never_ends_is_stopped_with_the_phase_named(monkeypatch, tmp_path):
    def endless_validate(*args, **kwargs):
        count = 0
        while True:
            count += 1

    monkeypatch.setattr(conformance, "validate", endless_validate)
    monkeypatch.setattr(conformance, "PHASE_SECONDS", 0.3)
    path = case_file(tmp_path, "-- asm\nmov %r0, 1\nexit\n-- result\n1\n")
    result = run_item(path, "interp")
    assert (result.status, result.detail) == (ERROR, f"{path}: time limit: validate took longer than 0.3 s")


def test_a_huge_budget_is_cut_by_the_clock_on_every_target(monkeypatch, tmp_path):
    """-- budget 100000000 never turns into minutes: each run stops after RUN_SECONDS."""
    monkeypatch.setattr(conformance, "RUN_SECONDS", 0.3)
    path = case_file(tmp_path, ENDLESS + "-- error\nendless\n-- budget\n100000000\n")
    for target in all_targets():
        started = time.perf_counter()
        result = run_item(path, target)
        assert time.perf_counter() - started < 3, target
        assert result.status == PASS, (target, result.detail)
        phase = "interpret" if target == "interp" else "emulate"
        assert result.actual.startswith(f"limit: {phase}: time limit of 0.3 s"), (target, result.actual)


def test_events_after_a_limit_are_not_run(tmp_path):
    """A 50-event endless loop ends after its first event, and says so for the 49 others."""
    path = case_file(tmp_path, ENDLESS + "-- mem\n00\n" * 50 + "-- error\nendless\n-- budget\n1000\n")
    for target in ("interp", "x86_64", "sparc64"):
        result = run_item(path, target)
        assert result.status == PASS, (target, result.detail)
        assert "events 2-50: limit: not run: event 1 ended in limit" in result.actual


def test_an_endless_loop_that_promises_a_result_fails_on_every_target(tmp_path):
    """Big-endian targets without -- result-be must still return (they used to pass)."""
    path = case_file(tmp_path, ENDLESS + "-- result\n1\n-- budget\n1000\n")
    for target in all_targets():
        result = run_item(path, target)
        assert result.status == FAIL, (target, result.status, result.detail)
        assert f"{path}:5: " in result.detail  # the line of -- result
        assert "needs -- result-be" not in result.detail  # a loop is no byte-order matter


def test_failure_listings_are_cut_with_a_count(tmp_path):
    path = case_file(tmp_path, "-- asm\nmov %r0, 0\n.rept 5000\nadd %r0, 1\n.endr\nexit\n-- result\n1\n")
    listing = ebpf_listing(path)
    assert len(listing) == LISTING_LINES + 1
    assert listing[-1] == f"... listing cut after {LISTING_LINES} instructions (5002 slots in all)"
    for target in ("interp", "x86_64"):
        result = run_item(path, target)
        assert result.status == FAIL
        text = explain_failure(path, result)
        # 200 eBPF instructions (each `add` becomes one native instruction here), prologue, tail
        assert len(text.splitlines()) < 2 * LISTING_LINES + 100
        if target == "x86_64":
            assert "listing cut after 200 instructions: 4802 more (5002 slots" in text


def test_a_difference_in_r0_and_in_the_maps_is_described_without_an_address():
    """Found by the parser fuzzer: maps have no byte address, the message must not need one."""
    from harness.oracle.outcome import RETURNED, Outcome
    from harness.running.conformance import compare_outcomes

    want = Outcome(RETURNED, r0=1, maps=(("counts", ((0, 1),)),))
    got = Outcome(RETURNED, r0=2, maps=(("counts", ((0, 2),)),))
    first, problems = compare_outcomes((want,), (got,), "little")
    assert first["what"] == "r0"
    assert problems == ["differs from the little-endian interpreter in r0: expected 0x1, got 0x2",
                        "first difference in maps: expected counts[0] = 1, got counts[0] = 2"]
