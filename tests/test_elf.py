"""Loading clang-built eBPF objects: sections, map relocations, and clear errors."""
import shutil
from pathlib import Path

import pytest

from harness import isa
from harness.cases.corpus import CorpusError, parse_case
from harness.cases.elf import ElfError, load_program

ELF = Path(__file__).resolve().parent.parent / "corpus" / "elf"


def test_a_map_relocation_becomes_a_map_load():
    program = load_program(ELF / "byte_class_counts.o", "harness", ["counts"])
    loads = [insn for insn in program.insns if insn.opcode == isa.LDDW and insn.src == isa.LDDW_MAP_FD]
    assert loads and all(insn.imm == 0 for insn in loads)


def test_the_default_section_is_the_first_executable_one():
    assert load_program(ELF / "byte_sum.o") == load_program(ELF / "byte_sum.o", "harness")


def patched(tmp_path: Path, offset: int, value: bytes) -> Path:
    data = bytearray((ELF / "byte_sum.o").read_bytes())
    data[offset:offset + len(value)] = value
    path = tmp_path / "patched.o"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("offset, value, message", [
    (18, (62).to_bytes(2, "little"), "expected EM_BPF"),   # e_machine = x86-64
    (4, b"\x01", "ELF class 32"),                           # EI_CLASS = 32-bit
    (0, b"\x7fXLF", "malformed ELF"),                       # not an ELF at all
])
def test_wrong_objects_are_refused_with_the_reason(tmp_path, offset, value, message):
    with pytest.raises(ElfError, match=message):
        load_program(patched(tmp_path, offset, value))


def test_missing_section_and_undeclared_map_are_clear_errors():
    with pytest.raises(ElfError, match=r"no section 'xdp' \(sections: .*harness"):
        load_program(ELF / "byte_sum.o", "xdp")
    with pytest.raises(ElfError, match="relocation against 'counts', which is not a declared map"):
        load_program(ELF / "byte_class_counts.o", "harness", [])


def test_elf_errors_in_a_case_name_the_file_and_line(tmp_path):
    shutil.copy(ELF / "byte_class_counts.o", tmp_path)
    with pytest.raises(CorpusError, match=r"c.data:1: -- elf: .*not a declared map"):
        parse_case(str(tmp_path / "c.data"), "-- elf byte_class_counts.o harness\n-- result\n0\n")


@pytest.mark.skipif(not (shutil.which("clang") and shutil.which("gcc")),
                    reason="clang and gcc are needed to rebuild the objects (Debian packages clang, gcc)")
def test_the_committed_cases_match_a_fresh_build(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("elf_build", ELF / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.HERE = tmp_path
    for name in build.PROGRAMS:
        build.build(name)
        assert (tmp_path / f"{name}.data").read_text() == (ELF / f"{name}.data").read_text()
