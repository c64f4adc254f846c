"""Nothing a worker, a signal or the disk does loses a result: ``harness run`` end to end.

Each test runs the command line in its own process group, as a terminal would, so
it can kill a worker, send Ctrl-C and check that no process is left behind.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.running.output import FolderLock, write_atomically

ROOT = Path(__file__).resolve().parent.parent
QUICK = "-- asm\nmov %r0, {n}\nexit\n-- result\n{n}\n"
# Runs on the interpreter for about 2 x 5 s (little- and big-endian, each stopped by the clock).
SLOW = "-- asm\nloop:\nja loop\nexit\n-- error\nendless\n-- budget\n100000000\n"


def harness(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def small_corpus(folder: Path, quick: int) -> list[str]:
    """``quick`` fast cases and, in the middle of them by name, one slow case."""
    folder.mkdir()
    for n in range(quick):
        (folder / f"quick_{n:02}.data").write_text(QUICK.format(n=n))
    (folder / f"quick_{quick // 2:02}_slow.data").write_text(SLOW)
    return sorted(path.name for path in folder.iterdir())


def wait_for_results(process: subprocess.Popen, lines: list[str], count: int = 1) -> None:
    """Read the verbose output until ``count`` items have passed."""
    passed = 0
    for line in process.stdout:  # type: ignore[union-attr]
        lines.append(line)
        passed += "PASSED" in line
        if passed >= count:
            return
    raise AssertionError("the run ended early:\n" + "".join(lines))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busiest_child(pid: int) -> int:
    """The worker process burning CPU, sampled over half a second."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    children = [int(child) for child in found.split()]
    before = {child: cpu_seconds(child) for child in children}
    time.sleep(0.5)
    return max(children, key=lambda child: cpu_seconds(child) - before[child])


def left_in_group(pgid: int) -> list[str]:
    return subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()


@pytest.mark.parametrize("arch", ["interp", "interp,x86_64"])
def test_a_killed_worker_costs_one_error_and_nothing_else(tmp_path, arch):
    """One worker runs the cases in order: kill it in the slow case, half-way through the run;
    each target of that case is an error, and the replacement worker runs the other half."""
    names = small_corpus(tmp_path / "cases", quick=30)
    targets = arch.split(",")
    out = tmp_path / "results.json"
    process = harness(str(tmp_path / "cases"), "--arch", arch, "-n", "1", "-v", "--json", str(out))
    lines: list[str] = []
    try:
        wait_for_results(process, lines, count=16)  # quick_00-15 done: the worker is in the slow case
        time.sleep(0.5)
        os.kill(busiest_child(process.pid), signal.SIGKILL)
        lines += process.stdout.readlines()  # type: ignore[union-attr]
        assert process.wait(timeout=120) == 1, "".join(lines)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    results = json.loads(out.read_text())["results"]
    assert sorted((Path(item["case"]).name, item["target"]) for item in results) == \
        [(name, target) for name in names for target in sorted(targets)]  # one result per (case, target)
    bad = [item for item in results if item["status"] != "pass"]
    assert sorted((Path(item["case"]).name, item["target"], item["status"]) for item in bad) == \
        [("quick_15_slow.data", target, "error") for target in sorted(targets)]
    assert all("worker crashed while running this case" in item["detail"] for item in bad)
    assert not left_in_group(process.pid)


def test_ctrl_c_writes_what_finished_marks_it_and_exits_130(tmp_path):
    small_corpus(tmp_path / "cases", quick=30)
    report = tmp_path / "report"
    process = harness(str(tmp_path / "cases"), "--arch", "interp", "-n", "2", "-v", "--report", str(report))
    lines: list[str] = []
    try:
        wait_for_results(process, lines)
        time.sleep(0.5)
        os.killpg(process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        lines += process.stdout.readlines()  # type: ignore[union-attr]
        assert process.wait(timeout=60) == 130, "".join(lines)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    time.sleep(0.5)
    assert not left_in_group(process.pid)
    document = json.loads((report / "results.json").read_text())
    assert document["interrupted"] and document["stopped"] == "interrupted by SIGINT"
    assert document["not_run"] >= 1 and len(document["results"]) + document["not_run"] == 31
    assert "quick_15_slow.data" not in {Path(item["case"]).name for item in document["results"]}
    notice = "INCOMPLETE RUN (interrupted by SIGINT)"
    assert notice in (report / "summary.md").read_text().split("\n", 3)[2]
    assert notice in (report / "junit.xml").read_text().splitlines()[1]
    assert f"id='incomplete' class='incomplete'>{notice}" in (report / "report.html").read_text()


def test_output_targets_are_checked_before_any_case_runs(tmp_path):
    case = tmp_path / "one.data"
    case.write_text(QUICK.format(n=1))
    regular = tmp_path / "file.txt"
    regular.write_text("x")
    checks = {("--report", str(regular)): f"--report: {regular} exists and is not a directory (give a folder)",
              ("--json", str(tmp_path)): f"--json: {tmp_path} is a directory; give a file name",
              ("--json", str(regular / "r.json")): f"--json: {regular} is not a directory"}
    for option, message in checks.items():
        completed = run_cli("run", str(case), "--arch", "interp", "-n", "0", *option)
        assert completed.returncode == 2 and completed.stderr.strip() == f"harness run: {message}"
        assert "passed" not in completed.stdout  # refused before running
    with FolderLock(tmp_path / "busy"):  # another run writing there: refused, naming it
        completed = run_cli("run", str(case), "--arch", "interp", "-n", "0", "--report", str(tmp_path / "busy"))
    assert completed.returncode == 2
    assert f"another harness process (pid {os.getpid()}) is writing into" in completed.stderr


def test_folder_lock_is_exclusive_and_leaves_nothing_behind(tmp_path):
    from harness.running.output import FolderBusy

    with FolderLock(tmp_path):
        with pytest.raises(FolderBusy):
            FolderLock(tmp_path).acquire()
    with FolderLock(tmp_path):  # free again once released
        pass
    assert list(tmp_path.iterdir()) == []


def test_results_are_written_whole_or_not_at_all(tmp_path):
    target = tmp_path / "results.json"
    write_atomically(target, "old\n")
    with pytest.raises(TypeError):  # the write fails half-way: the old file stays, no temporary is left
        write_atomically(target, 12345)  # type: ignore[arg-type]
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_broken_paths_are_reported_not_skipped(tmp_path):
    (tmp_path / "good.data").write_text(QUICK.format(n=1))
    (tmp_path / "folder.data").mkdir()
    (tmp_path / "dangling.data").symlink_to("nowhere.data")
    (tmp_path / "loop_a.data").symlink_to("loop_b.data")
    (tmp_path / "loop_b.data").symlink_to("loop_a.data")
    out = tmp_path / "r.json"
    completed = run_cli("run", str(tmp_path), "--arch", "interp,x86_64", "-n", "0", "--json", str(out))
    assert completed.returncode == 1, completed.stdout
    results = {(Path(item["case"]).name, item["target"]): item for item in json.loads(out.read_text())["results"]}
    assert len(results) == 10  # five entries x two targets, one result each
    assert results[("good.data", "interp")]["status"] == results[("good.data", "x86_64")]["status"] == "pass"
    reasons = {(name, target): (item["status"], item["detail"].split(": ", 1)[1])
               for (name, target), item in results.items() if name != "good.data"}
    expected = {"folder.data": "cannot read: a directory, not a case file",
                "dangling.data": "cannot read: a dangling symbolic link (to nowhere.data)",
                "loop_a.data": "cannot read: a symbolic link loop", "loop_b.data": "cannot read: a symbolic link loop"}
    assert reasons == {(name, target): ("error", why) for name, why in expected.items()
                       for target in ("interp", "x86_64")}


def test_many_failures_are_explained_fifty_in_full_and_listed_the_rest(tmp_path):
    for n in range(60):
        (tmp_path / f"wrong_{n:02}.data").write_text("-- asm\nmov %r0, 1\nexit\n-- result\n2\n")
    completed = run_cli("run", str(tmp_path), "--arch", "interp", "-n", "0")
    assert completed.returncode == 1
    output = completed.stdout
    assert "first 50 of 60 failures (the results file has every detail)" in output
    assert output.count("eBPF program:") == 50  # a listing for each explained failure only
    assert output.count("FAILED ") == 60  # and one summary line for every failure
