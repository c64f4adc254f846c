"""Verdicts of one case on one target: error kinds, invalid cases, results binding both byte orders."""
from pathlib import Path

import pytest

from harness.running.conformance import run_item

R1_AFTER_CALL = "-- asm\nmov %r1, 5\ncall 102\nmov %r0, %r1\nexit\n"
LOOP = "-- asm\nmov %r0, 0\nja -1\nexit\n-- budget\n100\n"
FAULT = "-- asm\nmov %r0, 0\nmov %r3, 0\nldxw %r0, [%r3+16]\nexit\n"
BYTE_ORDER = "-- asm\nldxh %r0, [%r1]\nexit\n-- mem\naa bb\n-- result\n0xbbaa\n"


def case(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("target", ["interp", "x86_64", "ppc64"])
def test_the_r1_after_call_program_is_rejected_everywhere(tmp_path, target):
    expected_error = run_item(case(tmp_path, "a.data", R1_AFTER_CALL + "-- error\n"), target)
    assert expected_error.status == ("pass" if target == "interp" else "skip")
    assert "instruction 2: mov reads r1" in expected_error.detail or target == "interp"
    declared = run_item(case(tmp_path, "b.data", R1_AFTER_CALL + "-- result\n2\n"), target)
    if target == "interp":  # the case is wrong, whatever a JIT does: an error, once
        assert declared.status == "error" and declared.detail.startswith(f"{tmp_path / 'b.data'}:6: invalid case")
    else:  # never a JIT failure
        assert declared.status == "skip" and "invalid case" in declared.detail


@pytest.mark.parametrize("text, kind, status", [
    (FAULT, "fault", "pass"), (FAULT, "limit", "fail"), (FAULT, "reject", "fail"), (FAULT, "", "pass"),
    (LOOP, "limit", "pass"), (LOOP, "fault", "fail"), (LOOP, "", "pass"),
    (R1_AFTER_CALL, "reject", "pass"), (R1_AFTER_CALL, "fault", "fail"),
])
@pytest.mark.parametrize("target", ["interp", "x86_64"])
def test_an_error_kind_must_match(tmp_path, text, kind, status, target):
    result = run_item(case(tmp_path, "k.data", text + f"-- error {kind}\nfree text\n"), target)
    if target != "interp" and text == R1_AFTER_CALL:
        status = "skip"  # nothing to run: the interp item carries the verdict
    assert result.status == status, result.detail


@pytest.mark.parametrize("target", ["interp", "s390x", "ppc64", "sparc64"])
def test_result_without_result_be_binds_big_endian_targets(tmp_path, target):
    result = run_item(case(tmp_path, "o.data", BYTE_ORDER), target)
    assert result.status == "fail" and "needs -- result-be" in result.detail
    fixed = run_item(case(tmp_path, "p.data", BYTE_ORDER + "-- result-be\n0xaabb\n"), target)
    assert fixed.status == "pass", fixed.detail


def fault(address: int | None, access: str = "read", size: int = 4, detail: str = ""):
    from harness.oracle.outcome import FAULT, Outcome

    return Outcome(FAULT, fault_address=address, fault_access=access, fault_size=size, detail=detail)


@pytest.mark.parametrize("actual, matches", [
    (fault(0x10), True),
    (fault(0x13, size=1), True),  # inside the access: a CPU may report the first unmapped byte
    (fault(0x14), False),  # past it
    (fault(0x0c), False),
    (fault(0x10, access="write"), False),
    (fault(0x10, access=""), True),  # direction unknown on one side
    (fault(None, access="", detail="x86_64: CPU exception (division error)"), False),
])
def test_faults_compare_address_and_direction(actual, matches):
    from harness.oracle.outcome import first_difference

    difference = first_difference(fault(0x10), actual)
    assert (difference is None) == matches
    if difference is not None:
        assert difference.what == "fault" and difference.expected == "read of 4 byte(s) at 0x10"
