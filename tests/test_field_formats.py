"""bpf_conformance's and uBPF's sections, read as their runners read them, on small files of our own."""
from pathlib import Path

import pytest

from harness.cases.asm import assemble
from harness.cases.config import ConfigError, RunDefaults, folder_config
from harness.cases.corpus import CorpusError, load_case, parse_case
from harness.oracle.validator import ValidationError, validate
from harness.running.conformance import run_item


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_information_sections_are_kept_but_change_nothing():
    case = parse_case("x.data", "-- c\nint entry(void) { return 1; }\n-- asm\nmov %r0, 1\nexit\n"
                                "-- result\n1\n-- no register offset\ncall instruction\n")
    assert case.c_source == "int entry(void) { return 1; }"
    assert case.notes == ["no register offset: call instruction"]
    assert case.result == 1 and len(case.program) == 2


def test_no_jit_makes_a_case_interpreter_only(tmp_path):
    path = write(tmp_path, "c.data", "-- asm\nmov %r0, 3\nexit\n-- result\n3\n-- no jit\nneeds bounds checks\n")
    assert run_item(path, "interp").status == "pass"
    native = run_item(path, "x86_64")
    assert native.status == "skip" and native.detail == "interpreter only (-- no jit): needs bounds checks"


def test_error_pattern_is_a_regular_expression_for_the_message(tmp_path):
    faulting = "-- asm\nmov %r0, 0\nmov %r1, 0\nstb [%r1], 1\nexit\n"
    matching = write(tmp_path, "a.data", faulting + "-- error pattern\nwrite of 1 byte\\(s\\) at 0x0$\n")
    other = write(tmp_path, "b.data", faulting + "-- error pattern\nout of bounds\n")
    rejected = write(tmp_path, "c.data", "-- asm\nmov %r11, 1\nexit\n-- error pattern\nregister number 11\n")
    assert run_item(matching, "interp").status == "pass"
    assert run_item(other, "interp").status == "fail"
    assert run_item(rejected, "interp").status == "pass"
    # a JIT target's message comes from its emulator: it is held to the kind of ending only
    assert run_item(other, "x86_64").status == "pass"
    with pytest.raises(CorpusError, match="not a regular expression"):
        parse_case("x.data", faulting + "-- error pattern\n(unclosed\n")


def test_error_beside_result_keeps_the_runners_value_and_judges_the_error(tmp_path):
    text = ("-- asm\nmov %r0, 0\nmov %r1, %r10\nstb [%r1], 0\nexit\n"  # above the stack: a fault
            "-- error\nout of bounds\n-- result\n0xffffffffffffffff\n")
    case = parse_case("x.data", text)
    assert case.expect_error and case.result is None and case.error_result == 2**64 - 1
    assert run_item(write(tmp_path, "c.data", text), "interp").status == "pass"


def test_reload_is_refused_and_unload_compiles_twice(tmp_path):
    reload = write(tmp_path, "r.data", "-- asm\nmov %r0, 0\nexit\n-- reload\n-- error\nalready loaded\n")
    result = run_item(reload, "interp")
    assert result.status == "pass" and "second time into the same VM" in result.actual
    assert run_item(reload, "arm64").status == "skip"
    with pytest.raises(CorpusError, match="expects -- error"):
        parse_case("x.data", "-- asm\nexit\n-- reload\n-- result\n0\n")
    unload = write(tmp_path, "u.data", "-- asm\nmov %r0, 5\nexit\n-- unload\n-- result\n5\n")
    assert {run_item(unload, target).status for target in ("interp", "x86_64", "s390x")} == {"pass"}


def test_asm_and_raw_together_must_agree_and_a_mismatch_names_both_lines():
    same = "-- asm\nmov %r0, 1\nexit\n-- raw\n0x00000001000000b7\n0x0000000000000095\n-- result\n1\n"
    assert parse_case("x.data", same).result == 1
    other = same.replace("0x00000001000000b7", "0x00000002000000b7")
    with pytest.raises(CorpusError) as error:
        parse_case("x.data", other)
    assert error.value.line == 5  # the raw line
    assert "asm (x.data:2)" in error.value.message and "instruction 0" in error.value.message


def test_linked_sections_and_hexdump_memory(tmp_path):
    write(tmp_path, "prog.asm", "ldxb %r0, [%r1+2]\nexit\n")
    write(tmp_path, "packet.hex", "0x0000:  0011 2233\n0x0004:  4455\n")
    path = write(tmp_path, "c.data", "-- asm @ prog.asm\n-- mem @ packet.hex\n-- result\n0x22\n")
    case = load_case(path)
    assert case.memory == bytes.fromhex("001122334455") and run_item(path, "interp").status == "pass"
    with pytest.raises(CorpusError, match="cannot read"):
        parse_case(str(tmp_path / "d.data"), "-- asm @ missing.asm\n")
    (tmp_path / "prog.bin").write_bytes(assemble("mov %r0, 9\nexit").encode())
    assert load_case(write(tmp_path, "b.data", "-- raw @ prog.bin\n-- result\n9\n")).program.encode() \
        == assemble("mov %r0, 9\nexit").encode()


def test_registers_above_r10_assemble_then_the_validator_refuses_them():
    program = assemble("mov %r11, 1\nmov %r0, %r15\nexit")
    assert (program.insns[0].dst, program.insns[1].src) == (11, 15)
    with pytest.raises(ValidationError, match="register number 11"):
        validate(program)


def test_swap_callx_and_the_first_exit_label():
    assert assemble("swap16 %r0\nexit") == assemble("bswap16 %r0\nexit")
    callx = assemble("mov %r2, 5\ncall %r2\nexit")
    assert callx.insns[1].opcode == 0x8D and callx.insns[1].dst == 2
    assert assemble("callx %r2\nexit").insns[0] == callx.insns[1]
    with pytest.raises(ValidationError, match="callx .* not in RFC 9669"):
        validate(callx)
    # bpf_conformance's assembler defines the label "exit" at the first exit
    program = assemble("ja exit\nmov %r0, 1\nexit\nmov %r0, 2\nexit")
    assert program.insns[0].off == 1


def test_result_bits_and_byte_order(tmp_path):
    low = write(tmp_path, "low.data", "-- asm\nlddw %r0, 0x1234567800000009\nexit\n-- result\n9\n-- result-bits\n32\n")
    assert {run_item(low, target).status for target in ("interp", "x86_64", "ppc64")} == {"pass"}
    full = write(tmp_path, "full.data", "-- asm\nlddw %r0, 0x1234567800000009\nexit\n-- result\n9\n")
    assert run_item(full, "interp").status == "fail"
    big = write(tmp_path, "big.data", "-- asm\nmov %r0, 0\nstw [%r10-4], 1\nldxb %r0, [%r10-1]\nexit\n"
                                      "-- result\n1\n-- byte-order\nbig\n")
    assert run_item(big, "interp").status == "pass"  # run in big-endian order
    assert run_item(big, "s390x").status == "pass"
    skipped = run_item(big, "x86_64")
    assert skipped.status == "skip" and "big-endian targets only" in skipped.detail
    with pytest.raises(CorpusError, match="32 or 64"):
        parse_case("x.data", "-- asm\nexit\n-- result-bits\n16\n")


def test_a_refused_case_that_declares_nothing_is_skipped(tmp_path):
    path = write(tmp_path, "asm_only.data", "-- asm\nadd %r1, 2\n")  # uBPF keeps such assembler tests
    assert {run_item(path, target).status for target in ("interp", "arm64")} == {"skip"}


def test_folder_settings_are_found_walking_up_and_checked(tmp_path):
    write(tmp_path, "suite/harness.toml", 'helpers = "ubpf"\nempty-memory = "null"\n')
    case_path = write(tmp_path, "suite/deep/er/c.data", "-- asm\nmov %r1, 0\ncall 5\nmov %r0, 2\nexit\n-- result\n0\n")
    case = load_case(case_path)
    assert case.helpers == "ubpf" and case.null_context and case.entry_pointer == 0
    assert run_item(case_path, "interp").status == "pass" and run_item(case_path, "sparc64").status == "pass"
    write(tmp_path, "bad/harness.toml", 'helper = "ubpf"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        folder_config(tmp_path / "bad")
    write(tmp_path, "worse/harness.toml", 'helpers = "linux"\n')
    bad_case = write(tmp_path, "worse/c.data", "-- asm\nexit\n")
    with pytest.raises(CorpusError, match="helpers = 'linux': expected one of harness, ubpf"):
        load_case(bad_case)


def test_the_run_default_applies_where_no_folder_chooses(tmp_path):
    path = write(tmp_path, "c.data", "-- asm\nmov %r1, 3\ncall 5\nexit\n-- result\n3\n")
    harness = run_item(path, "interp")
    assert harness.status == "error" and "unknown helper 5" in harness.actual  # not a harness helper
    ubpf = RunDefaults(helpers="ubpf", empty_memory="null")
    assert load_case(path, ubpf).entry_pointer == 0 and load_case(path).entry_pointer != 0
    assert run_item(path, "interp", defaults=ubpf).status == "pass"  # unwind(3) returns 3 and goes on
    write(tmp_path, "d.data", "-- asm\nmov %r1, 0\ncall 5\nmov %r0, 1\nexit\n-- result\n0\n")
    assert run_item(str(tmp_path / "d.data"), "x86_64", defaults=ubpf).status == "pass"


def test_results_little_endian_leaves_big_endian_targets_to_the_interpreter(tmp_path):
    text = "-- asm\nmov %r0, 0\nstw [%r10-4], 0x11223344\nldxh %r0, [%r10-4]\nexit\n-- result\n0x3344\n"
    both = write(tmp_path, "both/c.data", text)
    assert run_item(both, "interp").status == "fail" and run_item(both, "s390x").status == "fail"
    write(tmp_path, "le/harness.toml", 'results = "little-endian"\n')
    little = write(tmp_path, "le/c.data", text)  # as bpf_conformance writes its values
    assert {run_item(little, target).status for target in ("interp", "x86_64", "s390x", "ppc64")} == {"pass"}
    assert run_item(both, "s390x", defaults=RunDefaults(results="little-endian")).status == "pass"
