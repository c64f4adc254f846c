"""uBPF's test helpers (harness/oracle/helpers.py), run alike by the interpreter and every emulator."""
from pathlib import Path

import pytest

from arches.x86_64 import X86_64Backend
from harness.cases.asm import assemble
from harness.oracle.helpers import HELPER_SETS, UBPF_HELPERS, MemoryFault, helper_set
from harness.oracle.interpreter import interpret
from harness.running.conformance import run_item


class FlatMemory:
    """A helper's view of memory for unit tests: one bytearray at address 0x1000."""

    byte_order = "little"

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)

    def read(self, address: int, size: int) -> bytes:
        if not 0x1000 <= address <= address + size <= 0x1000 + len(self.data):
            raise MemoryFault(address, size)
        return bytes(self.data[address - 0x1000:address - 0x1000 + size])

    def write(self, address: int, data: bytes) -> None:
        self.read(address, len(data))
        self.data[address - 0x1000:address - 0x1000 + len(data)] = data


def call(number: int, memory: FlatMemory | None = None, *args: int) -> int:
    return UBPF_HELPERS[number].function(memory or FlatMemory(b""), *(list(args) + [0] * 5)[:5])


def test_the_ubpf_set_is_numbered_as_ubpf_registers_it():
    assert {number: helper.name for number, helper in UBPF_HELPERS.items()} == {
        0: "gather_bytes", 1: "memfrob", 2: "trash_registers", 3: "sqrti", 4: "strcmp_ext", 5: "unwind"}
    assert set(HELPER_SETS) == {"harness", "ubpf"} and helper_set("ubpf") is UBPF_HELPERS
    with pytest.raises(ValueError, match="unknown helper set 'linux'"):
        helper_set("linux")


def test_each_helper_as_uBPF_defines_it():
    assert call(0, None, 0x1A1, 0x2B2, 0xC3, 0xD4, 0xFFFFFFFFFFFFFFE5) == 0xA1B2C3D4E5
    memory = FlatMemory(b"\x00\x2a\x41")
    assert call(1, memory, 0x1001, 2) == 0x1001 and memory.data == bytearray(b"\x00\x00\x6b")
    assert call(2) == 0xF0
    assert call(3, None, 0x1_0000_0051) == 9 and call(3, None, 0xFFFFFFFF) == 0xFFFF
    strings = FlatMemory(b"abcx\x00abcz\x00abc\x00")
    assert call(4, strings, 0x1000, 0x1005) == (ord("x") - ord("z")) & 0xFFFFFFFF
    assert call(4, strings, 0x1005, 0x1000) == 2 and call(4, strings, 0x1000, 0x1000) == 0
    assert call(4, strings, 0x1000, 0x100A) == ord("x")  # "abcx" vs "abc"
    assert call(5, None, 0) == 0 and call(5, None, 7) == 7
    with pytest.raises(MemoryFault):
        call(1, FlatMemory(b"ab"), 0x1000, 3)


def test_unwind_ends_the_program_in_the_interpreter():
    program = assemble("mov %r1, 0\ncall 5\nmov %r0, 9\nexit")
    outcome = interpret(program, b"", "little", helpers=UBPF_HELPERS)
    assert outcome.kind == "return" and outcome.r0 == 0 and outcome.insns_executed == 2


class StashesR6InR9(X86_64Backend):
    """A broken JIT: it keeps eBPF r6 (rbx) in r9, a caller-saved register, across helper calls."""

    def build_helper_call(self, insn, index, address):
        return ["mov r9, rbx"] + super().build_helper_call(insn, index, address) + ["mov rbx, r9"]


@pytest.mark.parametrize("helper, caught", [(0, False), (2, True)])
def test_trash_registers_catches_a_jit_keeping_values_in_caller_saved_registers(tmp_path, helper, caught):
    (tmp_path / "harness.toml").write_text('helpers = "ubpf"\n')
    path = tmp_path / "c.data"
    arguments = "".join(f"mov %r{n}, {n}\n" for n in range(1, 6))
    path.write_text(f"-- asm\nmov %r6, 7\n{arguments}call {helper}\nmov %r0, %r6\nexit\n-- result\n7\n")
    assert run_item(str(path), "x86_64").status == "pass"  # the real backend keeps r6 in rbx
    broken = run_item(str(path), "x86_64", backend=StashesR6InR9())
    assert broken.status == ("fail" if caught else "pass"), broken.detail


CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "ubpf_helpers"


def test_the_ubpf_helper_corpus_folder_chooses_the_ubpf_set():
    assert (CORPUS / "harness.toml").read_text().count('helpers = "ubpf"') == 1
    assert len(list(CORPUS.glob("*.data"))) >= 6
