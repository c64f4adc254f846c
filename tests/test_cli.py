"""``python -m harness run`` end to end, in a subprocess like a user would run it."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def write(directory: Path, name: str, text: str | bytes) -> None:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def test_foreign_directory_reports_bad_files_one_by_one(tmp_path):
    write(tmp_path, "good.data", "# Copyright elsewhere\n-- asm\nmov32 %r0, 3\nexit\n-- result\n0x3\n")
    write(tmp_path, "good-mem.data", "-- asm\nldxb %r0, [%r1+1]\nexit\n-- mem\n00 2a\n-- result\n42\n")
    write(tmp_path, "unknown-section.data", "-- asm\nexit\n-- expected\n1\n")
    write(tmp_path, "bad-asm.data", "-- asm\nmov %r0, 1\nfrobnicate %r0\nexit\n-- result\n1\n")
    write(tmp_path, "junk.data", b"\xff\xfe\x00\x01binary")
    out = tmp_path / "results.json"
    completed = run_cli("run", str(tmp_path), "--arch", "interp", "-n", "0", "--json", str(out))
    assert completed.returncode == 1, completed.stdout + completed.stderr
    results = {Path(item["case"]).name: item for item in json.loads(out.read_text())["results"]}
    assert {name: item["status"] for name, item in results.items()} == {
        "good.data": "pass", "good-mem.data": "pass", "unknown-section.data": "error",
        "bad-asm.data": "error", "junk.data": "error"}
    assert "unknown-section.data:3: unknown section" in results["unknown-section.data"]["detail"]
    assert "bad-asm.data:3: unknown mnemonic 'frobnicate'" in results["bad-asm.data"]["detail"]
    assert "cannot read" in results["junk.data"]["detail"]
    assert "opcode coverage:" in completed.stdout


def test_all_passing_run_exits_zero_and_writes_the_documented_shape(tmp_path):
    write(tmp_path, "one.data", "-- asm\nmov %r0, 1\nexit\n-- result\n1\n")
    out = tmp_path / "r.json"
    completed = run_cli("run", str(tmp_path), "--arch", "interp", "-n", "0", "--json", str(out))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    document = json.loads(out.read_text())
    result = document["results"][0]
    assert {"case", "target", "status", "expected", "actual", "detail"} <= set(result)
    assert result["target"] == "interp" and result["status"] == "pass"
    assert document["summary"]["interp"]["pass"] == 1


def test_a_run_leaves_large_directories_out_unless_named(tmp_path):
    (tmp_path / "large").mkdir()
    write(tmp_path, "near.data", "-- asm\nmov %r0, 1\nexit\n-- result\n1\n")
    write(tmp_path / "large", "far.data", "-- asm\nmov %r0, 2\nexit\n-- result\n2\n")
    for paths, cases in (([tmp_path], {"near.data"}), ([tmp_path, tmp_path / "large"], {"near.data", "far.data"}),
                         ([tmp_path / "large" / "far.data"], {"far.data"})):
        out = tmp_path / "r.json"
        completed = run_cli("run", *map(str, paths), "--arch", "interp", "-n", "0", "--json", str(out))
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert {Path(result["case"]).name for result in json.loads(out.read_text())["results"]} == cases


def test_usage_errors_exit_two():
    assert run_cli("run", "no/such/dir").returncode == 2
    assert run_cli("run", "--arch", "vax", "corpus").returncode == 2
    completed = run_cli("--help")
    assert completed.returncode == 0 and "run" in completed.stdout
