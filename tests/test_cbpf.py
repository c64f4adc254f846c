"""Classic BPF: parsing tcpdump -ddd text, the kernel's static checks, and the translation."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cases.cbpf import CbpfError, CbpfRejection, CInsn, compile_filter, kernel_length
from harness.cases.corpus import CorpusError, load_case, parse_case
from harness.oracle.interpreter import interpret

CBPF_CASES = sorted((Path(__file__).resolve().parent.parent / "corpus" / "cbpf").glob("*.data"))


def run(text: str, packet: bytes = bytes(64)) -> int:
    outcome = interpret(compile_filter(text), packet, "little")
    assert outcome.kind == "return", outcome
    return outcome.r0


@pytest.mark.parametrize("text, line, message", [
    ("", 1, "empty"),
    ("2\n6 0 0 1\n", 1, "count says 2 instructions, 1 follow"),
    ("1\n6 0 0\n", 2, "four numbers"),
    ("1\n6 0 256 0\n", 2, "jf 256 out of range (0 to 255)"),
    ("1\n6 0 0 4294967296\n", 2, "k 4294967296 out of range (-2147483648 to 4294967295)"),
    ("\u00b2\n6 0 0 0\n", 1, "the first line must be the instruction count"),
    ("1\n99 0 0 0\n", 2, "unknown opcode 0x63"),
    ("2\n52 0 0 0\n6 0 0 0\n", 2, "division by constant 0"),           # div #0
    ("2\n100 0 0 32\n6 0 0 0\n", 2, "shift by 32"),                      # lsh #32
    ("2\n2 0 0 16\n6 0 0 0\n", 2, "scratch memory index 16"),            # st M[16]
    ("2\n21 0 5 1\n6 0 0 0\n", 2, "jump target outside"),                # jeq jf too far
    ("1\n0 0 0 1\n", 2, "last instruction must be a return"),            # ld #1
    ("2\n96 0 0 3\n22 0 0 0\n", 2, "reads M[3] before any write"),       # ld M[3]; ret a
    ("2\n48 0 0 4294963200\n22 0 0 0\n", 2, "ancillary load"),           # ldb [-4096]
])
def test_bad_filters_are_refused_naming_the_line(text, line, message):
    with pytest.raises(CbpfError) as error:
        compile_filter(text)
    assert error.value.line == line and message in error.value.message


def test_scratch_read_is_allowed_when_every_path_wrote_it():
    # st M[1] on both branches, then ld M[1]; ret a  -> A (= 5 or 0) flows through M[1]
    text = "7\n0 0 0 5\n21 0 2 5\n2 0 0 1\n5 0 0 1\n2 0 0 1\n96 0 0 1\n22 0 0 0\n"
    assert run(text) == 5


def test_division_by_x_zero_returns_zero_and_msh_reads_a_nibble():
    # ld #100; ldx #0; div x; ret #7  -> the division by X == 0 ends the filter with 0
    assert run("4\n0 0 0 100\n1 0 0 0\n60 0 0 0\n6 0 0 7\n") == 0
    # ldxb 4*([0]&0xf) with P[0] = 0x4f -> X = 60; txa; ret a
    assert run("3\n177 0 0 0\n135 0 0 0\n22 0 0 0\n", b"\x4f" + bytes(7)) == 60


def test_unsigned_compare_with_a_high_constant_and_a_full_width_return():
    # ld #0xc0a80101; jeq #0xc0a80101 -> ret #0xffffffff else ret #1
    text = "4\n0 0 0 3232235777\n21 0 1 3232235777\n6 0 0 4294967295\n6 0 0 1\n"
    assert run(text) == 0xFFFFFFFF


def test_out_of_packet_load_drops():
    assert run("2\n32 0 0 62\n22 0 0 0\n", bytes(64)) == 0  # ld [62] needs 4 bytes of 64: drop


def test_cbpf_errors_in_a_case_name_the_file_line():
    with pytest.raises(CorpusError, match=r"x.data:3: -- cbpf: four numbers|x.data:3: -- cbpf: expected"):
        parse_case("x.data", "-- cbpf\n2\n0 0 0\n6 0 0 0\n-- result\n0\n")


def test_a_filter_the_kernel_refuses_is_a_rejection_naming_the_file_line():
    case = parse_case("x.data", "-- cbpf\n2\n0 0 0 1\n52 0 0 0\n-- error\n")
    assert case.load_rejection == "classic BPF check (x.data:4): instruction 1: division by constant 0"


TCPDUMP = shutil.which("tcpdump")


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed (Debian package 'tcpdump'; "
                                            ".ci/run installs it where it can)")
@pytest.mark.parametrize("path", CBPF_CASES, ids=lambda path: path.stem)
def test_tcpdump_compiles_the_same_verdicts_now(path):
    """Recompile each corpus filter with this machine's tcpdump and run it over the case's packets."""
    case = load_case(path)
    expression = re.search(r"# tcpdump -ddd -y EN10MB '(.*)'", path.read_text()).group(1)
    text = subprocess.run([TCPDUMP, "-ddd", "-y", "EN10MB", expression], capture_output=True,
                          text=True, check=True).stdout
    program = compile_filter(text)
    verdicts = [interpret(program, packet, "little").r0 for packet in case.inputs]
    assert verdicts == case.results


def test_ld_ind_and_ldx_msh_take_a_negative_k_as_a_runtime_offset():
    """Only LD_ABS has the ancillary range: test_bpf's ld_ind_byte_negative_offset,
    X = 0x3e and k = -1, reads packet byte 0x3d."""
    packet = bytes(range(64))
    # ldx #0x3e; ldb [x - 1]; ret a
    assert run("3\n1 0 0 62\n80 0 0 4294967295\n22 0 0 0\n", packet) == 0x3D
    # ldxb 4*([-1]&0xf) is accepted (the load falls outside the packet at run time: 0)
    assert run("3\n177 0 0 4294967295\n135 0 0 0\n22 0 0 0\n", packet) == 0


def test_ancillary_loads_the_kernel_knows_are_unsupported_others_are_refused():
    with pytest.raises(CbpfRejection, match="no extension the kernel knows"):
        compile_filter("2\n32 0 0 4294963264\n22 0 0 0\n")  # ld [SKF_AD_OFF + SKF_AD_MAX]
    with pytest.raises(CbpfError, match="SKF_AD_MARK .* does not model") as error:
        compile_filter("2\n32 0 0 4294963220\n22 0 0 0\n")  # ld mark
    assert not isinstance(error.value, CbpfRejection)
    # SKF_AD_ALU_XOR_X needs no skb: A ^= X
    assert run("4\n0 0 0 12\n1 0 0 10\n32 0 0 4294963240\n22 0 0 0\n") == 12 ^ 10


def test_a_jump_the_kernels_longer_translation_cannot_encode_is_refused():
    """Each ld [8] becomes 14 instructions in the kernel's translation (a fast path of 6
    and a helper call of 8; one instruction here), so a jump over 2400 of them spans
    33600 eBPF slots there: beyond the 16-bit offset."""
    loads = 2400
    text = "\n".join([str(loads + 3), f"5 0 0 {loads}"] + ["32 0 0 8"] * loads + ["6 0 0 1", "6 0 0 2"])
    with pytest.raises(CbpfRejection, match="beyond the 16-bit offset") as error:
        compile_filter(text)
    assert error.value.line == 2
    assert kernel_length(CInsn(0x20, 0, 0, 8)) == 14 and kernel_length(CInsn(0x20, 0, 0, 0)) == 13
    shorter = "\n".join([str(1002), "5 0 0 1000"] + ["32 0 0 8"] * 1000 + ["6 0 0 1"])
    assert run(shorter) == 1


def test_a_refused_filter_is_a_rejection_an_error_case_passes_on(tmp_path):
    from harness.running.conformance import run_item

    path = tmp_path / "refused.data"
    path.write_text("-- cbpf\n2\n0 0 0 1\n52 0 0 0\n-- error\nthe kernel refuses div #0\n")
    result = run_item(str(path), "interp")
    assert result.status == "pass" and "division by constant 0" in result.actual
    assert run_item(str(path), "ppc64").status == "skip"
