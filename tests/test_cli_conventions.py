"""The command line behaves as a Unix tool and a pytest front end should.

Exit statuses follow pytest's conventions, usage errors are one line, a reader that
closes the pipe ends the output without a traceback, piped output has no terminal
leftovers, pytest's cache and common options work through ``run``.
"""
import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli import ROOT, run_cli, write

GOOD = "-- asm\nmov %r0, 1\nexit\n-- result\n1\n"
BAD = "-- asm\nmov %r0, 1\nexit\n-- result\n2\n"  # the declared result is wrong: fails everywhere


def two_cases(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write(folder, "good.data", GOOD)
    write(folder, "bad.data", BAD)
    return folder


@pytest.mark.parametrize("args, named", [
    (["run", "-n", "foo", "corpus/alu32"], "argument -n: expected a number of workers or 'auto', got 'foo'"),
    (["run", "-n", "-3", "corpus/alu32"], "argument -n: expected 0 (run in this process), a positive number"),
    (["run", "--tb", "fancy", "corpus/alu32"], "argument --tb: invalid choice: 'fancy'"),
    (["fuzz", "-n", "two"], "argument -n: expected a number of workers"),
])
def test_usage_errors_are_one_line_and_exit_two(args, named):
    completed = run_cli(*args)
    assert completed.returncode == 2
    assert completed.stdout == "" and len(completed.stderr.splitlines()) == 1, completed.stderr
    assert named in completed.stderr and "usage:" not in completed.stderr


def test_show_exits_like_run_would(tmp_path):
    cases = two_cases(tmp_path / "c")
    passing = run_cli("show", str(cases / "good.data"), "--arch", "interp,x86_64")
    assert passing.returncode == 0 and "PASS" in passing.stdout
    failing = run_cli("show", str(cases / "bad.data"), "--arch", "interp,x86_64")
    assert failing.returncode == 1 and "FAIL" in failing.stdout  # the listing is still printed
    unreadable = run_cli("show", "README.md", "--arch", "interp")
    assert unreadable.returncode == 2 and unreadable.stdout == ""
    assert unreadable.stderr.strip() == "harness show: README.md:3: text before the first '-- section' line"


def test_report_against_a_baseline_exits_one_when_a_cell_broke(tmp_path):
    cases = two_cases(tmp_path / "c")
    (cases / "bad.data").write_text(GOOD)
    before = tmp_path / "before.json"
    assert run_cli("run", str(cases), "--arch", "interp", "-n", "0", "--json", str(before)).returncode == 0
    (cases / "bad.data").write_text(BAD)
    after = tmp_path / "after.json"
    assert run_cli("run", str(cases), "--arch", "interp", "-n", "0", "--json", str(after)).returncode == 1
    worse = run_cli("report", str(after), "--baseline", str(before), "--out", str(tmp_path / "r1"))
    assert worse.returncode == 1 and "1 broken" in worse.stdout and "bad.data [interp] pass -> fail" in worse.stdout
    better = run_cli("report", str(before), "--baseline", str(after), "--out", str(tmp_path / "r2"))
    assert better.returncode == 0 and "1 fixed" in better.stdout
    plain = run_cli("report", str(after), "--out", str(tmp_path / "r3"))
    assert plain.returncode == 0  # a report of a failing run is written fine: only a comparison judges


def test_no_case_ran_exits_five_as_pytest_does(tmp_path):
    cases = two_cases(tmp_path / "c")
    completed = run_cli("run", str(cases), "--arch", "interp", "-n", "0", "-k", "no_such_case")
    assert completed.returncode == 5, completed.stdout + completed.stderr
    (tmp_path / "empty").mkdir()
    assert run_cli("run", str(tmp_path / "empty"), "--arch", "interp", "-n", "0").returncode == 5


def read_one_line_then_close(*args: str) -> subprocess.CompletedProcess:
    """``harness ARGS | head -1``: the reader takes one line and closes the pipe."""
    process = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    returncode = process.wait(timeout=300)
    return subprocess.CompletedProcess(args, returncode, first, stderr)


@pytest.mark.parametrize("args, status", [
    (["list", "-v", "--arch", "interp"], 0),
    (["show", "corpus/programs/prime_sieve_below_100.data", "--arch", "interp,x86_64,arm64"], 0),
    (["run", "corpus/alu32", "--arch", "interp", "-n", "0", "-v"], 0),
])
def test_a_closed_pipe_ends_the_output_without_a_traceback(args, status):
    completed = read_one_line_then_close(*args)
    assert completed.stdout.strip(), "the first line arrived"
    assert "Traceback" not in completed.stderr and "BrokenPipeError" not in completed.stderr, completed.stderr
    assert completed.stderr == "" and completed.returncode == status


def test_a_run_whose_pipe_closed_still_writes_its_results(tmp_path):
    out = tmp_path / "r.json"
    completed = read_one_line_then_close("run", "corpus/alu32", "--arch", "interp", "-n", "0", "-v",
                                         "--json", str(out))
    assert completed.returncode == 0 and completed.stderr == ""
    assert len(json.loads(out.read_text())["results"]) == len(list((ROOT / "corpus" / "alu32").glob("*.data")))


def test_piped_output_has_no_terminal_leftovers(tmp_path):
    cases = two_cases(tmp_path / "c")
    for workers in ("2", "0"):
        completed = run_cli("run", str(cases), "--arch", "interp,x86_64", "-n", workers)
        lines = completed.stdout.splitlines()
        assert completed.returncode == 1
        assert not [line for line in lines if "bringing up nodes" in line], completed.stdout
        assert not [line for line in lines if re.fullmatch(r"\s*\[\s*\d+%\]\s*", line)], completed.stdout
        assert "\r" not in completed.stdout and "\x1b[" not in completed.stdout
        assert len([line for line in lines if line.startswith("interp ")]) == 1  # the summary table, once
        if workers == "2":
            assert "2 workers [2 items]" in lines  # one item per case, running its targets


def run_on_a_terminal(*args: str) -> str:
    """What ``harness ARGS`` writes to a terminal (a pseudo-terminal, read to the end)."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=secondary, stderr=secondary, env={**os.environ, "COLUMNS": "100"})
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([primary], [], [], 300)
        if not ready:
            process.kill()
            raise AssertionError("no output for 300 s")
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(primary)
    return b"".join(chunks).decode("utf-8", "replace")


def test_the_progress_bar_draws_its_last_line_once():
    cases = len(list((ROOT / "corpus" / "alu32").glob("*.data")))
    screen = run_on_a_terminal("run", "corpus/alu32", "--arch", "interp", "-n", "0")
    drawn = re.findall(rf"\] {cases}/{cases} 100%", screen)
    assert len(drawn) == 1, screen
    assert "[100%]" not in screen and "eBPF harness summary" in screen


def test_last_failed_and_other_pytest_options_pass_through(tmp_path):
    cases = two_cases(tmp_path / "c")

    def run(*args: str) -> subprocess.CompletedProcess:
        return run_cli("run", "c", "--arch", "interp,x86_64", *args, cwd=tmp_path)

    first = run("-n", "2", "--junitxml", "pytest.xml", "-r", "A", "--durations", "2", "--tb", "line")
    assert first.returncode == 1
    assert "PASSED c/good.data" in first.stdout  # -r A lists the passes too
    assert "slowest 2 durations" in first.stdout
    testcases = {case.get("name") for case in __import__("xml.etree.ElementTree").etree.ElementTree
                 .parse(tmp_path / "pytest.xml").iter("testcase")}
    assert testcases == {"interp", "x86_64"} and (tmp_path / ".pytest_cache").is_dir()
    again = run("-n", "2", "--lf", "-v")
    ran = re.findall(r"(?:PASSED|FAILED) (c/\S+)", again.stdout)
    assert again.returncode == 1 and sorted(set(ran)) == ["c/bad.data"], again.stdout  # the failed case only
    first_failed = run("-n", "0", "--ff", "-v")
    order = re.findall(r"^(c/\S+) (?:PASSED|FAILED)", first_failed.stdout, re.MULTILINE)
    assert order == ["c/bad.data", "c/good.data"], first_failed.stdout  # the failed case first
    collected = run("-n", "0", "--", "--collect-only", "-q")
    assert collected.returncode == 0 and "c/good.data::x86_64" in collected.stdout
    assert "error" not in collected.stdout.lower()  # collecting is not a run whose results went missing


def test_cases_outside_the_directory_keep_their_path(tmp_path):
    cases = two_cases(tmp_path / "c")
    away = tmp_path / "elsewhere"
    away.mkdir()
    for workers in ("0", "2"):
        out = away / f"r{workers}.json"
        completed = run_cli("run", "../c", "--arch", "interp", "-n", workers, "-v", "--json", str(out), cwd=away)
        assert completed.returncode == 1
        assert f"{cases / 'bad.data'}::interp" in completed.stdout, completed.stdout
        assert {item["case"] for item in json.loads(out.read_text())["results"]} == {
            str(cases / "bad.data"), str(cases / "good.data")}


def test_list_and_run_count_the_same_instruction_forms(tmp_path):
    """Programs with maps compile with their map loads resolved, in ``list`` as in a run."""
    out = tmp_path / "r.json"
    run = run_cli("run", "corpus/maps", "--arch", "x86_64", "-n", "0", "--json", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    covered = json.loads(out.read_text())["coverage"]["covered"]
    listed = run_cli("list", "corpus/maps", "--arch", "x86_64")
    assert re.search(rf"^  x86_64\s+{covered} of \d+", listed.stdout, re.MULTILINE), (covered, listed.stdout)
    assert f"opcode coverage: {covered} of" in run.stdout
