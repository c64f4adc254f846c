"""The generated corpus families: the generator's own arithmetic, and no drift."""
import importlib.util
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
_spec = importlib.util.spec_from_file_location("generate_families", CORPUS / "generate_families.py")
families = importlib.util.module_from_spec(_spec)
sys.modules["generate_families"] = families  # dataclasses look their module up
_spec.loader.exec_module(families)

M64 = (1 << 64) - 1


@pytest.mark.parametrize("op, a, b, bits, expected", [
    ("sdiv", -7 & M64, 2, 64, -3 & M64),                    # truncates toward zero
    ("smod", -7 & M64, 2, 64, -1 & M64),                    # sign follows the dividend
    ("sdiv", 1 << 63, M64, 64, 1 << 63),                    # INT_MIN / -1 = INT_MIN
    ("smod", 1 << 63, M64, 64, 0),                          # INT_MIN % -1 = 0
    ("sdiv", 0x80000000, 0xFFFFFFFF, 32, 0x80000000),
    ("div", 5, 0, 64, 0),                                   # division by zero gives 0
    ("mod", 5, 0, 32, 5),                                   # modulo by zero keeps dst
    ("lsh", 1, 65, 64, 2),                                  # count masked to 6 bits
    ("lsh", 1, 33, 32, 2),                                  # count masked to 5 bits
    ("arsh", 0x80000000, 31, 32, 0xFFFFFFFF),
    ("rsh", M64, 63, 64, 1),
    ("sub", 0, 1, 32, 0xFFFFFFFF),
    ("mul", 0xFFFFFFFF, 0xFFFFFFFF, 32, 1),
])
def test_alu_reference_matches_the_rfc_by_hand(op, a, b, bits, expected):
    assert families.alu_reference(op, a, b, bits) == expected


def test_jump_and_endian_references_by_hand():
    assert families.jump_reference("jsgt", 1, M64, 64)           # 1 > -1 signed
    assert not families.jump_reference("jgt", 1, M64, 64)        # 1 < 2**64-1 unsigned
    assert families.jump_reference("jeq", 0x1_0000_0005, 5, 32)  # upper half ignored
    assert families.endian_reference("be16", 0x0123456789ABCDEF, "little") == 0xEFCD
    assert families.endian_reference("be16", 0x0123456789ABCDEF, "big") == 0xCDEF
    assert families.endian_reference("le32", 0x0123456789ABCDEF, "big") == 0xEFCDAB89
    assert families.endian_reference("bswap64", 0x0123456789ABCDEF, "big") == 0xEFCDAB8967452301


def test_committed_family_files_match_the_generator(tmp_path):
    written = families.write(tmp_path)
    assert len(written) <= 600
    for path in written:
        committed = families.OUT_DIR / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run python corpus/generate_families.py"
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run python corpus/generate_families.py")
    committed_files = {p.relative_to(families.OUT_DIR) for p in families.OUT_DIR.rglob("*.data")}
    assert committed_files == {p.relative_to(tmp_path) for p in written}


def test_far_jump_cases_are_really_far():
    from harness.cases.corpus import load_case
    case = load_case(str(families.OUT_DIR / "jmp" / "far_jeq_forward_taken.data"))
    assert len(case.program.insns) > 9000


@pytest.mark.parametrize("name", __import__("arches").names())
def test_the_mebibyte_filler_is_longer_than_every_short_branch_reach(name):
    """On every registered target the far case's filler exceeds 1 MiB of native code, the
    longest short-branch reach of any target (RISC-V JAL, arm64 b.cond, sparc64 bpcc).

    Measured per LD_ABS on a short program: a lower bound, since in the far program the
    branches to the abort path only grow (relaxed, or translated in far mode)."""
    import arches
    from harness.cases.asm import assemble

    backend = arches.get(name)
    size = lambda count: len(backend.translate(assemble("ldabsw 0\n" * count + "exit")).code)  # noqa: E731
    per_load = (size(65) - size(1)) / 64
    assert per_load * families.MEBIBYTE_FILLER > 1 << 20, \
        f"{name}: {per_load} bytes per LD_ABS x {families.MEBIBYTE_FILLER} is not past 1 MiB"
    program = families.mebibyte_program()
    assert program.count("ldabsw 0") == 1 and f".rept {families.MEBIBYTE_FILLER}" in program


def test_unary_reference_by_hand():
    assert families.unary_reference("neg32", 1) == 0xFFFFFFFF
    assert families.unary_reference("neg", 1 << 63) == 1 << 63
    assert families.unary_reference("movsx832", 0x1FF) == 0xFFFFFFFF       # low byte 0xff -> -1, 32-bit
    assert families.unary_reference("movsx864", 0x180) == M64 - 0x7F        # 0x80 -> -128
    assert families.unary_reference("movsx3264", 0x7FFFFFFF) == 0x7FFFFFFF
