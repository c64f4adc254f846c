"""What every helper call hands over, and what it leaves behind (harness/running/calls.py).

Each test takes a real backend, changes one thing a JIT can get wrong at a helper call, and
checks that the corpus case making the call fails, naming the call, the register or stack
pointer and both values; the unchanged backend passes the same case.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import arches
from arches import external
from arches.arm64 import Arm64Backend, move_immediate
from arches.external.description import DescriptionError, load_descriptions
from arches.x86_64 import SAVED_SP, X86_64Backend
from harness.running.conformance import run_item

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
GATHER = str(CORPUS / "helpers/gather_low_bytes_in_argument_order.data")
TWO_CALLS = """-- asm
mov %r1, 16
call 102
mov %r6, %r0
mov %r1, 81
call 102
add %r0, %r6
exit
-- result
0xd
"""


class KeepsItsLinkInX9(Arm64Backend):
    """arm64 keeping the link register in x9, a caller-saved register, across a helper call
    (instead of on the stack): right only as long as the helper leaves x9 alone."""

    def build_helper_call(self, insn, index, address):
        return ["mov x9, x30"] + move_immediate("x10", address) + ["blr x10", "mov x30, x9", "mov x7, x0"]


class KeepsR6InR11(X86_64Backend):
    """x86_64 copying eBPF r6 into r11 (caller-saved) around every helper call and back."""

    def build_helper_call(self, insn, index, address):
        return ["mov r11, rbx", f"movabs r10, {address:#x}", "call r10", "mov rbx, r11"]


class MisalignsTheStack(X86_64Backend):
    """x86_64 pushing one word before a helper call: rsp is 8 off the psABI's 16 at the call."""

    def build_helper_call(self, insn, index, address):
        return ["push rbx"] + super().build_helper_call(insn, index, address) + ["pop rbx"]


class PassesR2Truncated(X86_64Backend):
    """x86_64 zero-extending r2 into esi before each call: the low byte gather reads is right."""

    def build_helper_call(self, insn, index, address):
        return ["mov esi, esi"] + super().build_helper_call(insn, index, address)


class ForgetsToSaveR15(X86_64Backend):
    """x86_64 whose entry saves and restores r11 where it should r15 (eBPF r9)."""

    def build_prologue(self, body):
        return [line.replace("push r15", "push r11") for line in super().build_prologue(body)]

    def build_epilogue(self):
        return [line.replace("pop r15", "pop r11") for line in super().build_epilogue()]


def unclobbered(backend_class: type) -> object:
    """The backend with no caller-saved registers declared: the runner then clobbers none (its own
    name, so it gets an engine of its own: engines are per target name)."""
    variant = type(backend_class.__name__ + "Unclobbered", (backend_class,),
                   {"name": backend_class.__name__ + "-unclobbered", "caller_saved_registers": ()})
    return variant()


def test_a_value_kept_in_a_caller_saved_register_across_a_call_is_caught():
    assert run_item(GATHER, "arm64").status == "pass"
    result = run_item(GATHER, "arm64", backend=KeepsItsLinkInX9())
    assert result.status == "fail"
    assert "is the garbage the runner leaves in a caller-saved register after helper call 1" in result.detail
    # the runner's clobbering is what catches it: a helper stub that leaves x9 alone passes the JIT
    assert run_item(GATHER, "arm64", backend=unclobbered(KeepsItsLinkInX9)).status == "pass"


def test_a_data_value_kept_in_a_caller_saved_register_gives_a_wrong_result():
    path = str(CORPUS / "helpers/r6_to_r9_survive_helper_call.data")
    assert run_item(path, "x86_64").status == "pass"
    result = run_item(path, "x86_64", backend=KeepsR6InR11())
    assert result.status == "fail" and result.first_difference["what"] == "r0", result.detail
    assert run_item(path, "x86_64", backend=unclobbered(KeepsR6InR11)).status == "pass"


def test_a_misaligned_stack_pointer_at_a_call_names_the_call_and_the_rule():
    result = run_item(GATHER, "x86_64", backend=MisalignsTheStack())
    assert result.status == "fail"
    difference = result.first_difference
    assert difference["what"].startswith("helper call 1 (call 100 at instruction ")  # bpf_to_native
    assert difference["expected"].startswith("the stack pointer at the call a multiple of 16 (System V AMD64")
    assert difference["actual"].startswith("the stack pointer at the call = 0x") and difference["actual"][-1] == "8"


def test_an_argument_whose_upper_half_is_lost_fails_even_when_the_result_is_right():
    result = run_item(GATHER, "x86_64", backend=PassesR2Truncated())
    assert result.status == "fail"
    assert result.actual == run_item(GATHER, "x86_64").actual  # r0, memory, stack: all as expected
    difference = result.first_difference
    assert difference["what"].startswith("helper call 1 (call 100 at instruction ")
    expected, actual = difference["expected"], difference["actual"]
    assert expected.startswith("r2 = 0x") and actual.startswith("r2 = 0x") and len(actual) < len(expected)


def test_a_callee_saved_register_changed_and_saved_nowhere_is_named_at_the_first_call(tmp_path):
    path = tmp_path / "r9_then_call.data"
    path.write_text("-- asm\nmov %r9, 5\nmov %r1, 16\ncall 102\nadd %r0, %r9\nexit\n-- result\n0x9\n")
    result = run_item(str(path), "x86_64", backend=ForgetsToSaveR15())
    assert result.status == "fail"
    difference = result.first_difference
    assert difference["what"].startswith("helper call 1 (call 102 at instruction 2")
    assert difference["actual"].startswith("callee-saved r15 = 0x5, its value at entry (0xca5e")


# --- what an external JIT's helper calls carry: a runtime passing a context --------------------

class ContextX86_64(X86_64Backend):
    """x86_64 as a runtime whose helpers get a context: the entry's third argument (the run's
    cookie) is kept on the native stack and passed to every helper in r9, the sixth argument.
    The call at instruction ``wrong_at`` passes the slot's address instead (lea for mov)."""

    def __init__(self, wrong_at: int | None = None) -> None:
        super().__init__()
        self.wrong_at = wrong_at

    def build_prologue(self, body):
        lines = super().build_prologue(body)
        where = lines.index(f"mov {SAVED_SP}, rsp")
        return lines[:where] + ["push rdx", "push rdx"] + lines[where:]  # two: rsp stays 16-aligned

    def build_epilogue(self):
        lines = super().build_epilogue()
        return lines[:1] + ["add rsp, 16"] + lines[1:]

    def build_helper_call(self, insn, index, address):
        load = f"lea r9, [{SAVED_SP}]" if index == self.wrong_at else f"mov r9, qword ptr [{SAVED_SP}]"
        return [load] + super().build_helper_call(insn, index, address)


def plugin_main() -> None:
    """The test adapter's command: ``python -c ... [WRONG_AT]`` speaking the protocol."""
    import json

    from arches.external.example_plugin import answer, parse_request

    wrong = next((int(argument) for argument in sys.argv[1:] if argument.isdigit()), None)
    options, program = parse_request(sys.argv[1:], sys.stdin.read())
    print(json.dumps(answer(ContextX86_64(wrong), options, program, with_map="nomap" not in sys.argv[1:])))


def describe_context_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wrong_at: int | None,
                            with_map: bool = True) -> str:
    name = f"context{wrong_at if wrong_at is not None else ''}{'' if with_map else '-nomap'}-x86_64"
    script = tmp_path / "context_plugin.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\n"
                      "from test_helper_calls import plugin_main\nplugin_main()\n")
    command = [sys.executable, str(script)] + ([str(wrong_at)] if wrong_at is not None else []) \
        + ([] if with_map else ["nomap"])
    path = tmp_path / "context.toml"
    path.write_text(textwrap.dedent(f"""
        [[target]]
        name = "{name}"
        arch = "x86_64"
        command = {command!r}
        entry_arguments = ["memory", "length", "cookie"]
        helper_carries = [{{register = "r9", value = "cookie"}}]
    """).replace("'", '"'))
    monkeypatch.setenv(external.EXTRA_TARGETS_ENV, str(path))
    return name


def test_a_runtime_passing_its_context_to_every_helper_passes(tmp_path, monkeypatch):
    case = tmp_path / "two_calls.data"
    case.write_text(TWO_CALLS)
    name = describe_context_target(tmp_path, monkeypatch, None)
    assert run_item(str(case), name).status == "pass"
    events = str(CORPUS / "maps/array_counter_persists_between_events.data")  # a new cookie every run
    assert run_item(events, name).status == "pass"


@pytest.mark.parametrize("with_map, named", [
    (True, "at instruction 4, "),  # the JIT's eBPF-to-native map names the call's instruction
    (False, "at instruction 4 by the order of calls, "),  # without one, the order of calls does
])
def test_a_wrong_cookie_at_one_helper_call_fails_the_case_naming_register_and_values(tmp_path, monkeypatch,
                                                                                     with_map, named):
    case = tmp_path / "two_calls.data"
    case.write_text(TWO_CALLS)
    name = describe_context_target(tmp_path, monkeypatch, 4, with_map)  # the second call, at instruction 4
    result = run_item(str(case), name)
    assert result.status == "fail"
    assert result.actual == "return r0=0xd"  # the helpers ignore the context: only the check sees it
    difference = result.first_difference
    assert difference["what"].startswith(f"helper call 2 (call 102 {named}returning to 0x")
    assert difference["expected"].startswith("r9 = 0xc00c1e") and difference["expected"].endswith(
        "(the run's cookie)")
    assert difference["actual"].startswith("r9 = 0xaf")  # the address of the slot holding it


@pytest.mark.parametrize("items, message", [
    ('[{register = "r9"}]', "helper_carries item 1"),
    ('[{register = "r9", stack = 8, value = "memory"}]', "helper_carries item 1"),
    ('[{register = "r9", value = "context"}]', "\"value\" 'context'"),
    ('[{stack = -8, value = "memory"}]', "\"stack\" must be a byte offset"),
    ('{register = "r9", value = "memory"}', "\"helper_carries\" is a list"),
    ('[{register = "r9", value = "cookie"}]', "does not take it"),
])
def test_a_bad_helper_carries_item_is_a_one_line_error_naming_file_and_target(items, message, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(f'[[target]]\nname = "bad-jit"\narch = "x86_64"\ncommand = ["true"]\nhelper_carries = {items}\n')
    with pytest.raises(DescriptionError) as caught:
        load_descriptions(path, arches.names())
    text = str(caught.value)
    assert text.startswith(f"{path}: target bad-jit: ") and message in text and "\n" not in text


def test_a_jit_killed_by_a_signal_fails_the_case_naming_the_signal(tmp_path, monkeypatch):
    script = tmp_path / "crash.py"
    script.write_text("import os, signal, sys\nsys.stdin.read()\n"
                      "print('ubpf_jit_arm64.c:1725: resolve_branch_immediate: Assertion failed.', file=sys.stderr)\n"
                      "sys.stderr.flush()\nos.kill(os.getpid(), signal.SIGABRT)\n")
    path = tmp_path / "crash.toml"
    path.write_text(f'[[target]]\nname = "crashing-jit"\narch = "x86_64"\ncommand = ["{sys.executable}", "{script}"]\n')
    monkeypatch.setenv(external.EXTRA_TARGETS_ENV, str(path))
    result = run_item(GATHER, "crashing-jit")
    assert result.status == "fail" and result.actual == "the JIT crashed"
    assert "killed by SIGABRT (6)" in result.detail and "Assertion failed." in result.detail
