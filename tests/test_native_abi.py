"""Native ABI checks on every JIT run: a backend that does not give the caller back its
callee-saved registers and stack pointer fails, naming the register."""
from pathlib import Path

from arches.x86_64 import X86_64Backend
from harness.running.conformance import run_item

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
FIRST_CASE = str(sorted(CORPUS.rglob("*.data"))[0])


class SwappedPops(X86_64Backend):
    """The entry's epilogue pops r13 and r14 in the wrong order (a real JIT bug class)."""

    def build_epilogue(self) -> list[str]:
        lines = super().build_epilogue()
        first, second = lines.index("pop r14"), lines.index("pop r13")
        lines[first], lines[second] = lines[second], lines[first]
        return lines


class LeavesTheStackLow(X86_64Backend):
    """The entry returns with rsp 16 bytes below where the caller had it."""

    def build_epilogue(self) -> list[str]:
        lines = super().build_epilogue()
        where = lines.index("ret")
        lines[where:where + 1] = ["pop r11", "sub rsp, 16", "jmp r11"]
        return lines


def test_the_real_backend_passes_the_first_case():
    assert run_item(FIRST_CASE, "x86_64").status == "pass"


def test_swapped_callee_saved_registers_fail_the_first_corpus_case_naming_them():
    result = run_item(FIRST_CASE, "x86_64", backend=SwappedPops())
    assert result.status == "fail"
    assert "r13 = 0x" in result.detail and "r14 = 0x" in result.detail
    assert "System V AMD64 psABI" in result.actual or "callee-saved registers" in result.detail
    assert result.first_difference["what"] == "callee-saved registers"


def test_a_stack_pointer_not_given_back_fails_even_when_r0_is_right():
    result = run_item(FIRST_CASE, "x86_64", backend=LeavesTheStackLow())
    assert result.status == "fail" and "stack pointer = 0xafeff0 (was 0xaff000)" in result.detail, result.detail
