"""Classic BPF: parsing tcpdump -ddd text, the kernel's static checks, and the translation."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cases.cbpf import CbpfError, compile_filter
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
    with pytest.raises(CorpusError, match=r"x.data:4: -- cbpf: instruction 1: division by constant 0"):
        parse_case("x.data", "-- cbpf\n2\n0 0 0 1\n52 0 0 0\n-- result\n0\n")


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
