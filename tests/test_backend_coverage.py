"""harness coverage and the fuzzer's coverage steering, on small inputs."""
from types import SimpleNamespace

from harness.tools import backend_coverage, steer
from harness.tools.backend_coverage import ARCHES, builder_lines, measure, summarize, table

CASES = ["corpus/alu64/add_reg_carries_into_upper_half.data", "corpus/alu32/add32_imm_wraps_and_zero_extends.data"]


def test_builder_lines_are_the_build_methods_and_what_they_call():
    lines = builder_lines([ARCHES / "arm64.py"])[ARCHES / "arm64.py"]
    names = set(lines.values())
    assert {"build_alu", "build_load", "move_immediate", "conditional_branch"} <= names
    assert "set_return_address" not in names and "configure_engine" not in names


def test_a_small_corpus_leaves_builder_lines_unreached_and_names_them():
    entries = summarize(measure(["x86_64"], CASES, workers=1), ["x86_64"])
    x86 = next(entry for entry in entries if entry.name == "x86_64")
    assert x86.lines > 100 and 0 < x86.line_percent < 60
    assert any("build_atomic" in backend_coverage.builder_lines([ARCHES / "x86_64.py"])[ARCHES / "x86_64.py"]
               .get(line, "") for _, line, _ in x86.missed)
    text = table(entries)
    assert "x86_64" in text and "arches/x86_64.py:" in text and "lock" in text


def test_steering_weighs_up_pieces_that_reach_new_builder_branches(monkeypatch):
    monkeypatch.setattr(steer, "SAMPLES", 3)
    monkeypatch.setattr(steer, "BASELINE_SLOT_LIMIT", 12)  # a tiny baseline: most generated code is new
    weights, note = steer.steer(["riscv64"], seed=1)
    assert set(weights) == set(steer.DEFAULT_WEIGHTS)
    assert any(weights[kind] > steer.DEFAULT_WEIGHTS[kind] for kind in weights), note
    assert note.startswith("steer: ") and "builder branch arcs taken by the corpus" in note


def test_the_command_exits_1_while_a_builder_line_is_unreached(capsys):
    code = backend_coverage.main(["riscv64"], CASES[:1], 1, SimpleNamespace(quiet=True, json=None))
    assert code == 1 and "riscv64" in capsys.readouterr().out


def test_guards_are_the_raise_and_return_none_lines_and_are_set_apart_when_unreached():
    path = ARCHES / "mips64" / "assembly.py"
    guards = backend_coverage.guard_lines([path])[path]
    source = path.read_text().splitlines()
    assert guards and all(source[line - 1].strip().startswith(("raise", "return None", "except", '"', "f\""))
                          for line in guards)
    entries = summarize(measure(["x86_64"], CASES[:1], workers=1), ["x86_64"])
    x86 = next(entry for entry in entries if entry.name == "x86_64")
    assert all(text.startswith(("raise", "return None", "except")) for _, _, text in x86.guards)
    assert not any(text.startswith(("raise", "return None")) for _, _, text in x86.missed)
