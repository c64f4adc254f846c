"""External-JIT targets: the protocol, descriptions, known failures, and uBPF's two JITs.

The protocol tests need no C compiler: their plugins are Python programs (the example
plugin wrapping this project's x86_64 backend, and a few tiny misbehaving ones). The
uBPF tests need UBPF_SRC (.ci/run sets it to ../shared/third_party/ubpf when that
exists) and a C compiler, and skip saying which is missing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import arches
from arches import external
from arches.base import RejectedProgram
from arches.driver import helper_address
from arches.external.backend import register_id
from arches.external.description import DescriptionError, load_descriptions
from arches.external.known import load_known_failures
from arches.external.protocol import ProtocolError, parse_answer
from harness import layout
from harness.cases.asm import assemble
from harness.running.conformance import run_item
from harness.running.targets import TargetError, select
from test_cli import ROOT, run_cli

CORPUS = ROOT / "corpus"
UBPF_TARGETS = ("ubpf-x86_64", "ubpf-arm64", "ubpf-x86_64-dispatcher", "ubpf-arm64-dispatcher")
STDW_CASES = ("corpus/mem/stdw_imm_0x80000000_sign_extends.data",
              "corpus/mem/stb_imm_into_all_ones_doubleword_on_stack.data")
STDW_FAMILY = "corpus/families/mem/ldxdw_stdw_at_displacement_edges.data"  # negative stdw immediates too


def describe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    """Write a description file and point HARNESS_EXTERNAL_TARGETS at it."""
    path = tmp_path / "targets.toml"
    path.write_text(textwrap.dedent(text))
    monkeypatch.setenv(external.EXTRA_TARGETS_ENV, str(path))
    return path


def describe_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, command: str,
                    more: str = "") -> Path:
    """Describe one x86_64 target ``name`` whose command is the Python script ``command``
    (``more``: further lines of its description)."""
    return describe(tmp_path, monkeypatch, f"""
        [[target]]
        name = "{name}"
        arch = "x86_64"
        command = ["{sys.executable}", "{command}"]
    """ + more)


def script(tmp_path: Path, name: str, body: str) -> str:
    """A tiny plugin: a Python script (the command line is ``python SCRIPT``)."""
    path = tmp_path / name
    path.write_text("import json, sys\nsys.stdin.read()\n" + textwrap.dedent(body))
    return path.as_posix()


def case(tmp_path: Path, name: str, asm: str, result: str) -> str:
    path = tmp_path / name
    path.write_text(f"-- asm\n{asm}\n-- result\n{result}\n")
    return str(path)


# --- the protocol, driven by the example plugin (one of our own backends as a command) ----------

PLUGIN = f"""
    [[target]]
    name = "plugin-x86_64"
    arch = "x86_64"
    summary = "this project's x86_64 backend behind the protocol"
    command = ["{sys.executable}", "-m", "arches.external.example_plugin", "--backend", "x86_64"]
"""


@pytest.mark.parametrize("path", ["corpus/alu64/add_imm_0x80000000_sign_extends.data",
                                  "corpus/helpers/gather_low_bytes_in_argument_order.data",
                                  "corpus/helpers/memfrob_stack_twice.data",
                                  "corpus/calls/callee_r10_is_512_and_1024_below.data",
                                  "corpus/packet/ldabsh_network_byte_order.data",
                                  "corpus/maps/array_counter_persists_between_events.data"])
def test_a_plugin_target_runs_corpus_cases_like_the_backend_it_wraps(path, tmp_path, monkeypatch):
    describe(tmp_path, monkeypatch, PLUGIN)
    full = ROOT / path
    result = run_item(str(full), "plugin-x86_64")
    assert result.status == "pass", result.detail
    assert result.actual == run_item(str(full), "x86_64").actual


def test_helper_calls_work_only_through_the_relocations(tmp_path, monkeypatch):
    """The example plugin zeroes each helper address it embeds: the harness must write it back."""
    describe(tmp_path, monkeypatch, PLUGIN)
    backend = arches.get("plugin-x86_64")
    program = assemble("mov %r1, 2\nmov %r2, 3\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 104\nexit")
    native = backend.translate(program)
    stub = helper_address(104).to_bytes(8, "little")
    assert stub in native.code  # linked by the harness
    raw = json.loads(subprocess.run(backend.command + ["helpers=104"], input=program.encode().hex(),
                                    capture_output=True, text=True, cwd=ROOT).stdout)
    assert stub not in bytes.fromhex(raw["code"]) and raw["relocations"][0]["helper"] == 104


def test_an_abs32_relocation_links_a_helper(tmp_path, monkeypatch):
    """A hand-written 'JIT' whose code is sub rsp, 8; mov edi, 16; mov eax, HELPER; call rax;
    add rsp, 8; ret (the sub keeps rsp a multiple of 16 at the call, as the psABI wants)."""
    code = "4883ec08" + "bf10000000" + "b800000000" + "ffd0" + "4883c408" + "c3"
    command = script(tmp_path, "abs32.py", f'''print(json.dumps({{"code": "{code}",
        "relocations": [{{"offset": 10, "type": "abs32", "helper": 102}}]}}))''')
    describe_script(tmp_path, monkeypatch, "abs32-x86_64", command)
    result = run_item(case(tmp_path, "sqrt.data", "mov %r1, 16\ncall 102\nexit", "4"), "abs32-x86_64")
    assert result.status == "pass", result.detail


@pytest.mark.parametrize("backend, overrides, status", [
    ("x86_64", 'argument_registers = ["rdi", "rsi", "rdx", "rcx", "r8"]\nreturn_register = "rax"\n'
               'return_address = "push"', "pass"),
    ("x86_64", 'return_register = "rdx"', "fail"),  # the harness reads r0 where it is told to
    ("arm64", 'return_address = "x30"\nreturn_register = "x0"', "pass"),
])
def test_abi_overrides_in_a_description_are_what_the_runner_uses(backend, overrides, status, tmp_path,
                                                                   monkeypatch):
    name = f"abi{abs(hash(overrides)) % 10**8}-{backend}"
    describe(tmp_path, monkeypatch, f"""
        [[target]]
        name = "{name}"
        arch = "{backend}"
        command = ["{sys.executable}", "-m", "arches.external.example_plugin", "--backend", "{backend}"]
        {overrides}
    """)
    result = run_item(str(CORPUS / "alu64/add_reg_carries_into_upper_half.data"), name)
    assert result.status == status, result.detail


def test_a_rejection_is_a_skip_with_the_jits_own_message(tmp_path, monkeypatch):
    command = script(tmp_path, "refuser.py", 'print(json.dumps({"rejected": "no atomics on Tuesdays"}))')
    describe_script(tmp_path, monkeypatch, "refuser-x86_64", command)
    result = run_item(case(tmp_path, "one.data", "mov %r0, 1\nexit", "1"), "refuser-x86_64")
    assert result.status == "skip"
    assert result.detail == "refuser-x86_64 rejects the program: no atomics on Tuesdays"
    with pytest.raises(RejectedProgram):
        arches.get("refuser-x86_64").translate(assemble("mov %r0, 1\nexit"))


@pytest.mark.parametrize("body, message", [
    ('sys.stderr.write("segfault in the register allocator\\n"); sys.exit(3)',
     "exited with status 3; its standard error ends: segfault in the register allocator"),
    ('print("hello")', "the answer is not JSON"),
    ('print(json.dumps({"code": "c3", "relocations": [{"offset": 0, "type": "abs64", "helper": 1}]}))',
     "abs64 at offset 0 runs past the 1 bytes of code"),
    ('print(json.dumps({"code": "zz"}))', '"code" is not hex'),
    ('print(json.dumps({"code": "c3", "protocol": 2}))', "speaks protocol 2"),
])
def test_a_plugin_that_breaks_the_protocol_is_an_error_naming_it(body, message, tmp_path, monkeypatch):
    name = f"broken{abs(hash(body)) % 10**8}-x86_64"
    command = script(tmp_path, "broken.py", body)
    describe_script(tmp_path, monkeypatch, name, command)
    result = run_item(case(tmp_path, "one.data", "mov %r0, 1\nexit", "1"), name)
    assert result.status == "error"
    assert message in result.detail and "broken.py" in result.detail
    assert "Traceback" not in result.detail


def test_answers_are_checked_field_by_field():
    assert parse_answer('{"code": "90c3", "entry": 1}', "cmd").entry == 1
    with pytest.raises(ProtocolError, match="outside the 2 bytes"):
        parse_answer('{"code": "90c3", "entry": 2}', "cmd")
    with pytest.raises(ProtocolError, match="neither \"code\""):
        parse_answer('{"entry": 0}', "cmd")
    with pytest.raises(ProtocolError, match="must be one of abs64, abs32"):
        parse_answer('{"code": "00000000c3", "relocations": [{"offset": 0, "type": "rel8", "helper": 1}]}', "cmd")
    mapped = parse_answer('{"code": "90909090c3", "bpf_to_native": [[0, 0], [2, 3], [3, 4]]}', "cmd")
    assert mapped.bpf_to_native == ((0, 0), (2, 3), (3, 4))
    for pairs, message in (("[[0, 2], [1, 1]]", "offsets never decrease"), ("[[1, 0], [1, 2]]", "slots must ascend"),
                           ("[[0, 9]]", "past the 5 bytes"), ("[[0]]", "list of \\[slot, offset\\] pairs"),
                           ("[[0, -1]]", "two non-negative integers")):
        with pytest.raises(ProtocolError, match=message):
            parse_answer(f'{{"code": "90909090c3", "bpf_to_native": {pairs}}}', "cmd")


# --- descriptions and target selection ---------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ('[[target]]\nname = "x"\narch = "vax"\ncommand = ["true"]\n', "\"arch\" must name a built-in backend"),
    ('[[target]]\nname = "arm64"\narch = "arm64"\ncommand = ["true"]\n', "the name 'arm64' is taken"),
    ('[[target]]\nname = "x"\narch = "arm64"\n', "\"command\" is required"),
    ('[[target]]\nname = "x"\narch = "arm64"\ncommand = ["true"]\ncolour = "red"\n', "unknown field(s) colour"),
    ('[[target]]\nname = "x"\narch = "arm64"\ncommand = ["true"]\nentry_arguments = ["stack"]\n',
     "\"entry_arguments\" starts with memory, length"),
    ('[[target]\nname = "x"\n', "not valid TOML"),
])
def test_a_bad_description_is_one_line_naming_the_file(text, message, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DescriptionError, match="bad.toml") as caught:
        load_descriptions(path, arches.names())
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_register_the_architecture_lacks_is_named_with_the_file(tmp_path, monkeypatch):
    describe(tmp_path, monkeypatch, """
        [[target]]
        name = "wrongreg-arm64"
        arch = "arm64"
        command = ["true"]
        return_register = "rax"
    """)
    with pytest.raises(TargetError, match=r"targets.toml: target wrongreg-arm64: no register 'rax' on this"):
        select("wrongreg-arm64")


def test_all_keeps_meaning_the_builtin_targets(monkeypatch):
    monkeypatch.setenv("UBPF_SRC", "/nonexistent/ubpf")
    assert select("all").targets == ["interp"] + arches.names()
    assert set(arches.external_names()) >= {"ubpf-x86_64", "ubpf-arm64"}


def test_an_unavailable_target_says_why_in_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv("UBPF_SRC", raising=False)
    with pytest.raises(TargetError, match=r"^ubpf-arm64: unavailable: UBPF_SRC is not set"):
        select("interp,ubpf-arm64")
    assert select("default").targets == ["interp"] + arches.names()  # not configured: not run, no note
    monkeypatch.setenv("UBPF_SRC", str(tmp_path))  # configured, but no uBPF there
    chosen = select("default")
    assert chosen.targets == ["interp"] + arches.names()
    assert chosen.notes == [f"{name}: unavailable: UBPF_SRC={tmp_path} is not a uBPF source tree (no vm/ubpf_vm.c)"
                            for name in UBPF_TARGETS]
    completed = run_cli("run", "--arch", "ubpf-arm64", "corpus/alu64")
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        f"harness run: ubpf-arm64: unavailable: UBPF_SRC={tmp_path} is not a uBPF source tree (no vm/ubpf_vm.c)"]


# --- known failures ------------------------------------------------------------------------------

def test_known_failures_are_known_while_they_fail_and_stale_once_they_pass(tmp_path, monkeypatch):
    """A JIT whose every program returns 7: the case expecting 8 is known, the one expecting 7 stale."""
    command = script(tmp_path, "seven.py", 'print(json.dumps({"code": "b807000000c3"}))')  # mov eax, 7; ret
    seven = case(tmp_path, "returns_seven.data", "mov %r0, 7\nexit", "7")
    eight = case(tmp_path, "returns_eight.data", "mov %r0, 8\nexit", "8")
    other = case(tmp_path, "returns_nine.data", "mov %r0, 9\nexit", "9")
    (tmp_path / "known.toml").write_text(textwrap.dedent(f"""
        [[failure]]
        case = "{Path(seven).name}"
        target = "seven-x86_64"
        reason = "always returns 7"
        [[failure]]
        case = "{Path(eight).name}"
        target = "seven-x86_64"
        reason = "always returns 7"
    """))
    describe_script(tmp_path, monkeypatch, "seven-x86_64", command, '        known_failures = "known.toml"\n')
    assert run_item(seven, "seven-x86_64").status == "stale"
    known = run_item(eight, "seven-x86_64")
    assert known.status == "known"
    assert known.detail.startswith(f"known failure of seven-x86_64: always returns 7 (recorded in "
                                   f"{tmp_path / 'known.toml'})\n")
    assert "expected 0x8, got 0x7" in known.detail
    assert run_item(other, "seven-x86_64").status == "fail"
    # through the command line: a known failure keeps the run green, a stale one fails it
    out = tmp_path / "results.json"
    green = run_cli("run", eight, "--arch", "seven-x86_64", "-n", "0", "--json", str(out))
    assert green.returncode == 0, green.stdout + green.stderr
    assert json.loads(out.read_text())["summary"]["seven-x86_64"]["known"] == 1
    red = run_cli("run", seven, eight, "--arch", "seven-x86_64", "-n", "0")
    assert red.returncode == 1
    assert "1 known failure(s) pass now (stale)" in red.stdout


def test_a_known_failure_file_names_its_target(tmp_path):
    path = tmp_path / "ubpf-arm64.toml"
    path.write_text('[[failure]]\ncase = "a.data"\ntarget = "ubpf-x86_64"\nreason = "r"\n')
    with pytest.raises(DescriptionError, match="target 'ubpf-x86_64' in the file of target 'ubpf-arm64'"):
        load_known_failures(path, "ubpf-arm64")


@pytest.mark.parametrize("target, causes", [
    ("ubpf-arm64", {"is_alu64_op": 3, "VOLATILE_CTXT": 2, "resolve_branch_immediate": 1, "num_jumps++": 1}),
    ("ubpf-arm64-dispatcher", {"is_alu64_op": 3, "VOLATILE_CTXT": 2, "resolve_branch_immediate": 1,
                               "num_jumps++": 1}),
    ("ubpf-x86_64", {"emit_muldivmod": 1}),
    ("ubpf-x86_64-dispatcher", {"emit_muldivmod": 1}),
])
def test_each_recorded_ubpf_failure_names_its_cause_in_ubpfs_source(target, causes):
    """The arm64 stdw bug, the helper context in x26 (also its scratch register), the short b.cond
    (and adr / ldr literal) reach, the unbounded jump table; on x86-64 the helper context in r11,
    also the division's scratch."""
    arch = target.split("-")[1]
    failures = load_known_failures(external.KNOWN_FAILURES_DIR / f"ubpf-{arch}.toml", target)
    assert all("vm/ubpf_jit_" in failure.reason or "ubpf_vm.c" in failure.reason for failure in failures)
    assert {cause: sum(cause in failure.reason for failure in failures) for cause in causes} == causes
    assert len(failures) == sum(causes.values())


# --- uBPF, built from UBPF_SRC -------------------------------------------------------------------

def ubpf_or_skip() -> Path:
    from arches.external.ubpf import find_compiler

    source = os.environ.get("UBPF_SRC")
    if not source:
        pytest.skip("UBPF_SRC is not set (.ci/run sets it to ../shared/third_party/ubpf when that exists)")
    if find_compiler() is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build uBPF with")
    return Path(source)


@pytest.mark.parametrize("target", ["ubpf-x86_64", "ubpf-arm64"])
def test_ubpf_fails_the_stdw_cases_on_arm64_only_as_recorded(target):
    ubpf_or_skip()
    for path in STDW_CASES:
        result = run_item(str(ROOT / path), target)
        if target == "ubpf-arm64":
            assert result.status == "known", result.detail
            assert "0x80000000" in result.actual or "0xffffff12" in result.actual
        else:
            assert result.status == "pass", result.detail


def test_ubpf_rejects_packet_loads_in_its_own_words():
    ubpf_or_skip()
    result = run_item(str(CORPUS / "packet/ldabsh_network_byte_order.data"), "ubpf-x86_64")
    assert result.status == "skip"
    assert result.detail == "ubpf-x86_64 rejects the program: unknown opcode 0x28 at PC 0"


def test_ubpf_helper_numbers_above_its_table_are_renumbered_and_linked():
    ubpf_or_skip()
    backend = arches.get("ubpf-arm64")
    program = assemble("mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 104\nexit")
    native = backend.translate(program)
    listing = "\n".join(backend.disassemble(native.code, 0x100000))
    assert "(helper table)" in listing and f"{helper_address(104):#x}" in listing
    result = run_item(str(CORPUS / "helpers/mix_argument_order_and_width.data"), "ubpf-arm64")
    assert result.status == "pass", result.detail


def test_ubpf_arm64_code_past_2mib_translates_and_runs():
    """The driver sizes uBPF's code buffer from the program: 2 MiB of arm64 code, branches and a
    local call over it, helper calls and exits at the far end, all like the interpreter."""
    ubpf_or_skip()
    result = run_item(str(CORPUS / "families/large/far_2mib_unconditional_calls_and_exits.data"), "ubpf-arm64")
    assert result.status == "pass", result.detail
    assert result.code_size > 2 << 20


def test_a_program_ubpf_still_refuses_is_a_skip_with_its_message():
    ubpf_or_skip()
    result = run_item(str(CORPUS / "families/large/far_2mib_unconditional_calls_and_exits.data"), "ubpf-x86_64")
    assert result.status == "skip"  # 26,400 helper calls need more patchable jumps than uBPF keeps
    assert result.detail == "ubpf-x86_64 rejects the program: Too many jump instructions"
    backend = arches.get("ubpf-arm64")
    answer = subprocess.run(backend.command + ["helpers=102", "max_code_size=65536"], capture_output=True,
                            text=True, input=assemble("call 102\n" * 1000 + "exit").encode().hex())
    assert json.loads(answer.stdout) == {
        "protocol": 1, "rejected": "Target buffer too small (a code buffer of 65536 bytes, max_code_size)"}


def test_ubpf_arm64_helper_calls_more_than_1mib_before_its_helper_table_jump_to_garbage(tmp_path):
    """The second cause recorded for far_2mib_conditional_branches_and_calls (the first, the
    b.cond assertion, stops its translation): shown here without a conditional branch."""
    ubpf_or_skip()
    filler = ".rept 14000\ncall 102\n.endr\n"
    far = case(tmp_path, "far.data", f"mov %r1, 16\ncall 102\nexit\n{filler}exit", "4")
    near = case(tmp_path, "near.data", f"gotol end\n{filler}end:\nmov %r1, 16\ncall 102\nexit", "4")
    assert run_item(near, "ubpf-arm64").status == "pass"
    result = run_item(far, "ubpf-arm64")
    assert result.status == "fail" and result.first_difference["what"] == "kind"
    # the dispatcher slot 1.1 MiB ahead, read through an ldr literal whose 19-bit word offset wrapped:
    # 2 MiB short of it, below the code
    assert "ubpf-arm64: read of 8 byte(s) at 0x" in result.actual and "by `ldr x24, #0x" in result.actual


def test_ubpf_dispatcher_targets_call_one_entry_with_the_helpers_table_index():
    ubpf_or_skip()
    program = assemble("mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 104\n"
                       "mov %r1, 9\ncall 102\nexit")
    for target, id_register in (("ubpf-x86_64-dispatcher", "r9"), ("ubpf-arm64-dispatcher", "x5")):
        backend = arches.get(target)
        native = backend.translate(program)
        assert native.helper_ids == {63: 102, 62: 104}  # the free table slots, highest first
        assert layout.DISPATCHER_STUB.to_bytes(8, "little") in native.code
        assert not any(helper_address(number).to_bytes(8, "little") in native.code for number in (102, 104))
        assert backend.helper_id_register == register_id(backend.uc_arch, id_register)
        for path in ("helpers/mix_argument_order_and_width.data", "helpers/gather_low_bytes_in_argument_order.data",
                     "calls/call_local_then_helper.data"):
            result = run_item(str(CORPUS / path), target)
            assert result.status == "pass", result.detail


def run_patched_ubpf(tmp_path: Path, file: str, correct: str, patched: str, *paths: str) -> str:
    """Copy uBPF's vm/, replace one snippet, build it (in a cache of its own) and run the corpus
    paths on ubpf-arm64; returns the terminal output."""
    source = ubpf_or_skip()
    copy = tmp_path / "ubpf"
    shutil.copytree(source / "vm", copy / "vm")
    path = copy / "vm" / file
    text = path.read_text()
    assert text.count(correct) == 1, f"uBPF's {file} changed: update this test's patch"
    path.write_text(text.replace(correct, patched))
    environment = {**os.environ, "UBPF_SRC": str(copy), "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    completed = subprocess.run([sys.executable, "-m", "harness", "run", "--arch", "ubpf-arm64", "-n", "0", *paths],
                               cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    return completed.stdout


def failed_items(output: str) -> list[str]:
    return sorted(line.split()[1] for line in output.splitlines() if line.startswith("FAILED "))


def test_a_broken_copy_of_ubpf_is_caught_with_expected_actual_and_its_listing(tmp_path):
    """uBPF's arm64 JSGT emitted as GE (signed >=): the corpus catches it, the failure shows
    the case, expected vs actual and uBPF's native code."""
    output = run_patched_ubpf(tmp_path, "ubpf_jit_arm64.c", "case EBPF_MODE_JSGT:\n        return COND_GT;",
                              "case EBPF_MODE_JSGT:\n        return COND_GE;", "corpus/jmp", "corpus/families/jmp")
    failed = failed_items(output)
    assert {"corpus/families/jmp/jsgt_k_boundaries.data::ubpf-arm64",  # equal operands: GE != GT
            "corpus/families/jmp/jsgt_x_boundaries.data::ubpf-arm64"} <= set(failed)
    # and nothing but cases with a JSGT fails (every_condition_at_immediate_edges has all of them)
    assert all("/jsgt_" in item or "/every_condition_" in item for item in failed), failed
    assert "on ubpf-arm64: FAIL" in output and "  expected: " in output and "  actual:   " in output
    assert "each followed by the ubpf-arm64 code it became" in output and "b.ge" in output
    assert re.search(r"^ +\d+: jsgt %r\d, .*    <- pair \d+$", output, re.MULTILINE), output[-3000:]  # marked


def test_a_fixed_copy_of_ubpf_makes_its_known_failures_stale(tmp_path):
    """With the stdw immediate loaded as 64 bits, the recorded known failures pass: the run fails,
    saying which records to remove."""
    output = run_patched_ubpf(tmp_path, "ubpf_jit_arm64.c", "int sixty_four = is_alu64_op(&inst);",
                              "int sixty_four = is_alu64_op(&inst) || inst.opcode == EBPF_OP_STDW;", "corpus/mem",
                              STDW_FAMILY)
    assert failed_items(output) == sorted(f"{path}::ubpf-arm64" for path in STDW_CASES + (STDW_FAMILY,))
    assert output.count("on ubpf-arm64: STALE") == 3
    assert "remove its entry from the known-failure file" in output
    assert "3 known failure(s) pass now (stale)" in output


def test_fuzzing_ubpf_shrinks_each_mismatch_to_a_case(tmp_path):
    """Differential fuzzing of both uBPF JITs; today every finding is one of arm64's two bugs: the
    stdw immediate stored zero-extended, or the helper context (x26, also its scratch register for
    atomics and far offsets) clobbered before a helper call."""
    ubpf_or_skip()
    out = tmp_path / "findings"
    completed = run_cli("fuzz", "--arch", "ubpf-x86_64,ubpf-arm64", "--count", "25", "--out", str(out))
    assert completed.returncode in (0, 1), completed.stdout + completed.stderr
    assert "fuzz: 25 programs x 2 targets" in completed.stdout
    findings = sorted(out.glob("*.data")) if out.exists() else []
    for finding in findings:
        text = finding.read_text()
        lines = text.splitlines()
        assert re.match(r"\d{4}-ubpf-arm64-", finding.name), text  # numbered, then the signature
        stdw = any(line.startswith("stdw ") and ", -" in line for line in lines)
        context = "interpreter x5 = 0x10000000 (the input memory pointer)" in text and any(
            line.startswith("lock ") or re.search(r"[+-](0x[0-9a-f]{4,}|[0-9]{4,})\]", line) for line in lines)
        assert stdw or context, text
    assert any("(the input memory pointer)" in finding.read_text() for finding in findings)
