"""Every command the README shows is run here, so none of them goes stale.

The README's indented command lines are read from the file; each must have a row in
EXAMPLES (a new example without one fails ``test_every_readme_command_has_a_row``).
A row runs the command as the README shows it, in a folder laid out like the
checkout whose ``corpus/`` holds the few cases the examples name (so a command over
"the corpus" takes seconds, not minutes), with ``.venv/bin/`` meaning this Python's
environment. A row narrows only what would take minutes (a 60 s fuzz runs 2 s,
mutation testing one architecture) and sends files meant for /tmp to the test's
own folder; a row that cannot run here says where it is covered.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_cli import ROOT

README = ROOT / "README.md"
BIN = Path(sys.executable).parent
COMMAND_START = re.compile(r"^    (\$ |\.venv/bin/|python3? |UBPF_SRC=|HARNESS_EXTERNAL_TARGETS=)")
# The mini corpus: one plain case, one atomic case, and the cases the examples name.
CASES = ["corpus/alu32/add32_imm_wraps_and_zero_extends.data", "corpus/atomic/lock_add32_minus_one_borrow.data",
         "corpus/families/alu32/add32_k_boundaries.data", "corpus/mem/stdw_imm_0x80000000_sign_extends.data"]


@dataclass(frozen=True)
class Example:
    readme: str  # the command as the README shows it (without its comment)
    run: str = ""  # the shell command run instead ({tmp}: the test's folder); "" runs `readme` as shown
    codes: tuple[int, ...] = (0,)  # exit statuses that mean it worked
    expect: str = ""  # text its output must hold
    skip: str = ""  # why it cannot run here, and where it is covered
    env: str = ""  # an environment variable it needs


EXAMPLES = [
    Example("python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/python -m harness run --arch all "
            "--report reports", run=".venv/bin/python -m harness run --arch all --report reports",
            expect="report: reports/report.html"),  # the set-up before it is tests/test_packaging.py's
    Example("python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/python -m pytest -n auto",
            skip="this is the command that runs this test; the install is tests/test_packaging.py's"),
    Example(".venv/bin/ebpf-jit-harness --version", expect="ebpf-jit-harness "),
    Example(".venv/bin/pytest corpus/alu32 --arch x86_64 -n 2", expect="1 passed"),
    Example(".venv/bin/python -m harness run", expect="riscv64"),
    Example(".venv/bin/python -m harness run --arch x86_64", expect="x86_64"),
    Example(".venv/bin/python -m harness run --arch interp,arm64 corpus/alu32", expect="arm64"),
    Example(".venv/bin/python -m harness run -n 0 -x corpus/atomic", expect="riscv64"),
    Example(".venv/bin/python -m pytest corpus --arch s390x -n 2", expect="4 passed"),
    Example(".venv/bin/python -m harness run --arch x86_64 corpus/alu32 --lf --tb=line", expect="x86_64"),
    Example(".venv/bin/python -m harness run --arch interp corpus/alu32 -- --collect-only -q",
            expect="corpus/alu32/add32_imm_wraps_and_zero_extends.data::interp"),
    Example(".venv/bin/python -m harness run --json before.json", expect="results written to before.json"),
    Example(".venv/bin/python -m harness run --json after.json", expect="results written to after.json"),
    Example(".venv/bin/python -m harness report after.json --baseline before.json",
            run=(".venv/bin/python -m harness run --json before.json >/dev/null && "
                 ".venv/bin/python -m harness run --json after.json >/dev/null && "
                 ".venv/bin/python -m harness report after.json --baseline before.json"),
            expect="no cell changed status"),
    Example(".venv/bin/python -m harness show corpus/families/alu32/add32_k_boundaries.data --arch x86_64",
            expect="each followed by the x86_64 code it became"),
    Example(".venv/bin/python -m harness new corpus/alu64/my_case.data", expect="replace TODO"),
    Example(".venv/bin/python -m harness list", expect="instruction forms"),
    Example(".venv/bin/python -m harness fuzz --arch all --seconds 60 -n 2",
            run=".venv/bin/python -m harness fuzz --arch all --seconds 2 -n 2", expect="programs"),
    Example(".venv/bin/python -m harness mutate -n 2",
            run=".venv/bin/python -m harness mutate --arch x86_64 --count 6 --no-probe -n 2",
            codes=(0, 1), expect="x86_64"),
    Example(".venv/bin/python -m harness coverage -n 2", run=".venv/bin/python -m harness coverage --arch x86_64 -n 2",
            codes=(0, 1), expect="x86_64"),
    Example(".venv/bin/python -m harness.tools.hostile mutate --count 10000 --seed 1 --out /tmp/mutants",
            run=".venv/bin/python -m harness.tools.hostile mutate --count 20 --seed 1 --out {tmp}/mutants"),
    Example(".venv/bin/python -m harness run /tmp/mutants -n 2 --json /tmp/mutants.json",
            run=(".venv/bin/python -m harness.tools.hostile mutate --count 20 --seed 1 --out {tmp}/mutants && "
                 ".venv/bin/python -m harness run {tmp}/mutants -n 2 --json {tmp}/mutants.json"),
            codes=(0, 1), expect="results written"),
    Example(".venv/bin/python -m harness run --helpers ubpf --results little-endian /path/to/bpf_conformance/tests",
            run=(".venv/bin/python -m harness run --helpers ubpf --results little-endian --arch interp,x86_64 "
                 "$BPF_CONFORMANCE_TESTS"), env="BPF_CONFORMANCE_TESTS", codes=(0, 1), expect="x86_64"),
    Example('.venv/bin/python -m harness run --helpers ubpf --empty-memory null --results little-endian -k "not elf" '
            "/path/to/ubpf/tests",
            run=('.venv/bin/python -m harness run --helpers ubpf --empty-memory null --results little-endian '
                 '-k "not elf" --arch interp,x86_64 $UBPF_TESTS'), env="UBPF_TESTS", codes=(0, 1), expect="x86_64"),
    Example(".venv/bin/python -m harness import-test-bpf /usr/src/linux-source-6.1.tar.xz --out build/test_bpf",
            skip="the kernel's test_bpf import takes minutes; tests/test_field_suites.py imports it the same way "
                 "(import_test_bpf) when a linux-source tarball is installed"),
    Example(".venv/bin/python -m harness run build/test_bpf/classic build/test_bpf/ebpf build/test_bpf/long",
            skip="runs the import above (minutes on every target); tests/test_field_suites.py runs its classic/ "
                 "and ebpf/ cases"),
    Example(".venv/bin/python -m harness run build/test_bpf/huge",
            skip="runs the import above, programs up to 199,587 instructions: long by design"),
    Example(".venv/bin/python -m harness bench --huge",
            skip="20-40 minutes by design; the README's own note names --sizes for a quicker run"),
    Example(".venv/bin/python -m harness bench",
            skip="minutes long by design (the full corpus at -n 0, 1 and 2); run by hand for its figures"),
    Example(".venv/bin/python -m pytest corpus --dist load --tx 4*ssh=user@hostA//python=/path/to/.venv/bin/python "
            "--tx 4*ssh=user@hostB//python=/path/to/.venv/bin/python --rsyncdir harness --rsyncdir arches "
            "--rsyncdir corpus",  # two local workers stand in for the two ssh hosts
            run=".venv/bin/python -m pytest corpus --dist load --tx 2*popen//python={python} --arch x86_64",
            expect="4 passed"),
    Example("UBPF_SRC=~/src/ubpf .venv/bin/python -m harness run --arch ubpf-x86_64,ubpf-arm64",
            run="UBPF_SRC=$UBPF_SRC .venv/bin/python -m harness run --arch ubpf-x86_64,ubpf-arm64",
            env="UBPF_SRC", expect="ubpf-arm64"),
    Example("UBPF_SRC=~/src/ubpf .venv/bin/python -m harness show corpus/mem/stdw_imm_0x80000000_sign_extends.data "
            "--arch ubpf-arm64", run=("UBPF_SRC=$UBPF_SRC .venv/bin/python -m harness show "
                                      "corpus/mem/stdw_imm_0x80000000_sign_extends.data --arch ubpf-arm64"),
            env="UBPF_SRC", expect="ubpf-arm64"),
    Example("UBPF_SRC=~/src/ubpf .venv/bin/python -m harness fuzz --arch ubpf-x86_64,ubpf-arm64 --seconds 60",
            run="UBPF_SRC=$UBPF_SRC .venv/bin/python -m harness fuzz --arch ubpf-x86_64,ubpf-arm64 --seconds 2",
            env="UBPF_SRC", codes=(0, 1), expect="programs"),
    Example("HARNESS_EXTERNAL_TARGETS=$PWD/myjit.toml .venv/bin/python -m harness run --arch myjit-arm64",
            expect="myjit-arm64"),  # the README's myjit.toml, its made-up command our example plugin
    Example("$ printf 'b7 01 00 00 10 00 00 00\\n85 00 00 00 66 00 00 00\\n95 00 00 00 00 00 00 00\\n' | "
            "python -m arches.external.example_plugin --backend x86_64 protocol=1 frame_size=512 helpers=102 "
            "code_address=0x1000000 max_code_size=134217728"),
]


def readme_commands() -> list[str]:
    """The README's indented command lines, continuation lines joined, comments dropped."""
    commands, current = [], None
    for line in README.read_text().splitlines():
        if current is not None and line.startswith("        ") and line.strip() and not line.strip().startswith("#"):
            current = current.rstrip("\\ ") + " " + line.strip()  # a continuation line
            continue
        if current is not None:
            commands.append(current)
            current = None
        if COMMAND_START.match(line):
            current = re.sub(r"\s+#.*$", "", line.strip())
    if current is not None:
        commands.append(current)
    return [command.strip() for command in commands]


def test_every_readme_command_has_a_row():
    shown = readme_commands()
    assert len(shown) > 20
    rows = [example.readme for example in EXAMPLES]
    assert sorted(set(shown) - set(rows)) == [], "README commands no test runs (add a row to EXAMPLES)"
    assert sorted(set(rows) - set(shown)) == [], "rows for commands the README no longer shows"


def myjit_description(tmp: Path) -> None:
    """The README's myjit.toml, its made-up command replaced by the example plugin's arm64 backend."""
    text = README.read_text()
    block = text[text.index('    [[target]]\n    name = "myjit-arm64"'):]
    block = block[:block.index("\n\n")]
    toml = "\n".join(line[4:] for line in block.splitlines())
    toml = toml.replace('command = ["/opt/myjit/harness-plugin", "--arm64"]',
                        f'command = ["{sys.executable}", "-m", "arches.external.example_plugin", "--backend", "arm64"]')
    assert "example_plugin" in toml
    (tmp / "myjit.toml").write_text(toml)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.readme[:70])
def test_readme_example_runs(example, tmp_path):
    if example.skip:
        pytest.skip(example.skip)
    if example.env and not os.environ.get(example.env):
        pytest.skip(f"needs {example.env} (e.g. {example.env}=/path/to/ubpf, as .ci/run sets it)")
    if example.readme.startswith("$ "):  # an example that shows its output: it must print exactly that
        command = example.readme[2:]
        text = README.read_text()
        shown = text[text.index("    $ printf"):].split("\n")
        expected = next(line.strip() for line in shown[1:] if line.strip().startswith("{"))
        completed = subprocess.run(["bash", "-c", command.replace("python ", f"{sys.executable} ", 1)], cwd=ROOT,
                                   capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.strip() == expected
        return
    checkout(tmp_path)
    if "myjit" in example.readme:
        myjit_description(tmp_path)
    command = (example.run or example.readme).replace("{tmp}", str(tmp_path)).replace(".venv/bin/", f"{BIN}/")
    command = command.replace("{python}", sys.executable)
    # `-n auto` means one worker per core; inside the test suite's own workers, one is plenty
    environment = {**os.environ, "COLUMNS": "120", "PYTEST_XDIST_AUTO_NUM_WORKERS": "1"}
    environment.pop("PYTEST_ADDOPTS", None)
    completed = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                               env=environment)
    output = completed.stdout + completed.stderr
    assert completed.returncode in example.codes, f"{command}\nexit {completed.returncode}\n{output[-3000:]}"
    assert example.expect in output, f"{command}\n{output[-3000:]}"


def checkout(folder: Path) -> None:
    """A folder laid out like the checkout, its corpus holding CASES only."""
    for case in CASES:
        (folder / case).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / case, folder / case)
