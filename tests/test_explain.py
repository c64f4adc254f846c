"""Failures that explain themselves: interleaved listings with bytes, named operand pairs."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest

import arches
from harness.cases.pairs import pair_notes
from harness.running.conformance import Result, load_checked, run_item
from harness.running.explain import LISTING_LINES, code_view, explain_failure, failing_pairs
from harness.tools.mutate import CATALOGUE, mutated_backend
from test_cli import ROOT, run_cli, write

CORPUS = ROOT / "corpus"
MUTANTS = {mutant.name: mutant for mutant in CATALOGUE}
_spec = importlib.util.spec_from_file_location("generate_families", CORPUS / "generate_families.py")
families = importlib.util.module_from_spec(_spec)
sys.modules["generate_families"] = families
_spec.loader.exec_module(families)

NATIVE_LINE = re.compile(r"^      (0x[0-9a-f]+): ((?:[0-9a-f]{2} ?)+?)\s{2,}(\S.*)$")
EBPF_LINE = re.compile(r"^\s*(\d+): (\S.*?)(    <- .*)?$")


def parse_interleaved(lines: list[str]) -> dict[int, bytes]:
    """eBPF slot -> the bytes of the native lines printed under it."""
    blocks: dict[int, bytes] = {}
    slot = None
    for line in lines:
        native = NATIVE_LINE.match(line)
        if native and slot is not None:
            blocks[slot] += bytes.fromhex(native.group(2))
            continue
        ebpf = EBPF_LINE.match(line)
        if ebpf and not line.startswith("      0x"):
            slot = int(ebpf.group(1))
            blocks[slot] = b""
        elif line.startswith("  ("):  # the prologue or the tail: not an instruction's code
            slot = None
    return blocks


@pytest.mark.parametrize("name", arches.names() + arches.external_names())
def test_every_backend_interleaves_each_instruction_with_its_own_bytes(name):
    """Under each eBPF instruction, exactly the native bytes bpf_to_native gives it: every
    built-in backend, and uBPF's JITs (their driver reads uBPF's own offsets)."""
    from arches.external import Unavailable

    case = str(CORPUS / "programs" / "gcd_euclid_64bit.data")
    try:
        backend = arches.get(name)
    except Unavailable as error:
        pytest.skip(str(error))
    program = load_checked(case).runnable
    native = backend.compile(program)
    view = code_view(case, name)
    assert view.interleaved, view.lines[:3]
    blocks = parse_interleaved(view.lines)
    starts = program.instruction_starts()
    assert sorted(blocks) == starts
    offsets = native.bpf_to_native
    for slot, following in zip(starts, starts[1:] + [len(program.insns)]):
        assert blocks[slot] == native.code[offsets[slot]:offsets[following]], (name, slot)
    assert "  (before instruction 0: prologue and epilogue)" in view.lines


def test_a_long_program_shows_the_window_around_the_failing_pair():
    case = str(CORPUS / "families" / "alu64" / "mul_x_boundaries.data")
    program = load_checked(case).runnable
    assert len(program.instruction_starts()) > 60
    view = code_view(case, "x86_64", limit=20, focus=200, marks={200: "pair 9"})
    slots = [int(match.group(1)) for line in view.lines if (match := EBPF_LINE.match(line))
             and not line.startswith("      0x")]
    assert len(slots) == 20 and slots[0] < 200 < slots[-1]
    assert any(line.endswith("    <- pair 9") for line in view.lines)
    assert re.search(r"\.\.\. \d+ instruction\(s\) before slot \d+ not shown", "\n".join(view.lines))


def test_an_external_jit_without_a_map_is_shown_side_by_side_and_says_why(tmp_path, monkeypatch):
    description = tmp_path / "targets.toml"
    description.write_text(f"""
[[target]]
name = "plugin-x86_64"
arch = "x86_64"
summary = "this project's x86_64 backend behind the protocol"
command = ["{sys.executable}", "-m", "arches.external.example_plugin", "--backend", "x86_64", "--without-map"]
""")
    monkeypatch.setenv("HARNESS_EXTERNAL_TARGETS", str(description))
    case = str(CORPUS / "alu64" / "add_imm_0x80000000_sign_extends.data")
    view = code_view(case, "plugin-x86_64")
    assert not view.interleaved
    assert "reports no eBPF-to-native map" in view.lines[0] and "do not line up" in view.lines[0]
    assert "plugin-x86_64 native" in view.lines[1] and " | 0x1000000: 53 " in "\n".join(view.lines)


def run_broken(arch: str, case: Path, mutant: str) -> Result:
    result = run_item(str(case), arch, backend=mutated_backend(arches.get(arch), MUTANTS[mutant]))
    assert result.status == "fail", result.detail
    return result


@pytest.mark.parametrize("arch", ["x86_64", "s390x", "arm32"])  # little, big endian, 32-bit
def test_a_family_failure_names_each_differing_pair_with_its_operands_and_values(arch):
    case = CORPUS / "families" / "alu32" / "sub32_x_boundaries.data"
    result = run_broken(arch, case, "sub32-no-zext")
    text = explain_failure(str(case), result)
    named = re.findall(r"^  pair (\d+) \(\[r10-(\d+)\]\) differs: sub32 (%r\d), (%r\d) with \3 = (0x[0-9a-f]+), "
                       r"\4 = (0x[0-9a-f]+): expected (0x[0-9a-f]+), got (0x[0-9a-f]+)$", text, re.MULTILINE)
    assert len(named) == 8, text[:2000]
    for number, slot, _, _, a, b, expected, actual in named:
        assert int(slot) == 8 * int(number)
        # the expected value from the generator's own arithmetic, not from the interpreter
        assert int(expected, 16) == families.alu_reference("sub", int(a, 16), int(b, 16), 32)
        assert int(actual, 16) != int(expected, 16) and int(actual, 16) & 0xFFFFFFFF == int(expected, 16)
    differing = result.first_difference["words_differing"]["stack"]
    assert f"... and {differing - 8} more differing pair(s)" in text
    assert f"    <- pair {named[0][0]}" in text


def test_a_jump_family_failure_names_the_pairs_by_their_r0_bit():
    case = CORPUS / "families" / "jmp32" / "jeq32_x_boundaries.data"
    result = run_broken("arm64", case, "jmp32-reads-upper-half")
    pairs = failing_pairs(str(case), result)
    notes = {note.number: note for note in pair_notes(case)}
    assert pairs and all(pair.expected != pair.actual for pair in pairs)
    for pair in pairs:  # the jumps the upper halves spoil: equal low words, different garbage above
        assert notes[pair.note.number].text.endswith(": taken") and pair.expected == "taken"
    text = explain_failure(str(case), result)
    first = pairs[0].note
    assert (f"  pair {first.number} (r0 bit {first.r0_bit}) differs: jeq32 " in text
            and "expected taken, got not taken" in text)


def test_every_family_case_names_its_pairs_and_hand_written_cases_none():
    accumulating = 0
    for path in sorted((CORPUS / "families").rglob("*.data")):
        notes = pair_notes(path)
        text = path.read_text()
        if "Result i is stored at" in text:
            accumulating += 1
            assert [note.slot for note in notes] == [8 * (i + 1) for i in range(len(notes))], path
            assert len(notes) == text.count("stxdw [%r10-"), path
        elif "r0 is the bitmask of jumps taken" in text:
            assert [note.r0_bit for note in notes] == list(range(len(notes) - 1, -1, -1)), path
    assert accumulating > 80
    assert pair_notes(CORPUS / "alu32" / "add32_imm_wraps_and_zero_extends.data") == []


def test_summary_markdown_cuts_long_details_with_an_ellipsis(tmp_path):
    from harness.reporting.model import build
    from harness.reporting.report import summary_markdown

    long = "first line " + "x" * 300
    document = {"results": [{"case": "corpus/g/a.data", "target": "x86_64", "status": "fail", "detail": long},
                            {"case": "corpus/g/b.data", "target": "x86_64", "status": "fail", "detail": "short"}]}
    markdown = summary_markdown(build(document, tmp_path))
    line = next(line for line in markdown.splitlines() if "a.data" in line)
    assert line.endswith("…") and "x" * 100 in line and long not in line
    assert next(line for line in markdown.splitlines() if "b.data" in line).endswith(": fail: short")


def test_show_interleaves_every_target_and_exits_zero_on_a_pass():
    completed = run_cli("show", "corpus/mem/stdw_imm_0x80000000_sign_extends.data", "--arch", "interp,x86_64,s390x")
    assert completed.returncode == 0
    assert "each followed by the x86_64 code it became" in completed.stdout
    assert "each followed by the s390x code it became" in completed.stdout
    assert re.search(r"^\s+0: stdw \[%r10-16\], -0x80000000\n\s+0x[0-9a-f]+: 48 c7 45 f0 00 00 00 80 ",
                     completed.stdout, re.MULTILINE)
