"""Seeded fuzzing of the harness itself: mutated corpus files and hostile programs.

Quick by default (a few dozen inputs); ``HARNESS_FUZZ_COUNT=N`` runs N of each and
``HARNESS_FUZZ_SEED=S`` picks the seed (the same seed makes the same inputs):

    HARNESS_FUZZ_COUNT=2000 .venv/bin/python -m pytest tests/test_hostile_inputs.py

Asserted for every input: exactly one result per (case, target), no traceback or
INTERNALERROR, no internal error of the harness, every error one line naming its
file and line (or saying why the whole file is at fault: unreadable, too large, or
out of time), and the unchanged controls among the mutated files still pass everywhere.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from harness.running.conformance import ERROR, PASS, SKIP, STATUSES, all_targets, run_item
from harness.tools.hostile import hostile_programs, mutate_corpus

ROOT = Path(__file__).resolve().parent.parent
COUNT = int(os.environ.get("HARNESS_FUZZ_COUNT", "0"))
SEED = int(os.environ.get("HARNESS_FUZZ_SEED", "20261126"))


# Errors that concern a whole file rather than one of its lines.
WHOLE_FILE = ("cannot read", "larger than", "time limit")


def check_result(result: dict, path: str) -> None:
    assert result["status"] in STATUSES
    detail = result["detail"] or ""
    assert "internal error" not in detail and "Traceback" not in detail, detail
    if result["status"] == ERROR:
        assert "\n" not in detail, detail
        assert re.match(re.escape(path) + r":\d+: ", detail) or \
            any(detail.startswith(f"{path}: {kind}") for kind in WHOLE_FILE), detail


def test_mutated_corpus_files_in_one_run(tmp_path):
    """The parser fuzzer: one ``harness run`` over mutated copies of corpus files."""
    written = mutate_corpus([ROOT / "corpus"], COUNT or 36, SEED, tmp_path / "mutants")
    out = tmp_path / "results.json"
    workers = ["-n", "2"] if COUNT else ["-n", "0"]
    completed = subprocess.run([sys.executable, "-m", "harness", "run", str(tmp_path / "mutants"), "--arch", "all", *workers,
                                "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    output = completed.stdout + completed.stderr
    assert "Traceback" not in output and "INTERNALERROR" not in output
    results = json.loads(out.read_text())["results"]
    cells = [(Path(item["case"]).name, item["target"]) for item in results]
    assert sorted(cells) == sorted((path.name, target) for path in written for target in all_targets())
    for item in results:
        check_result(item, item["case"])
        if Path(item["case"]).name.startswith("good_"):
            assert item["status"] in (PASS, SKIP), item
    assert completed.returncode == (0 if all(item["status"] in (PASS, SKIP) for item in results) else 1)


def test_hostile_programs_get_one_result_each(tmp_path):
    """The program fuzzer: random slots, endless loops, call chains, wild pointers..."""
    targets = all_targets()
    for name, text in hostile_programs(COUNT or 30, SEED):
        path = tmp_path / name
        path.write_text(text)
        for target in targets:
            result = run_item(str(path), target)
            assert (result.case, result.target) == (str(path), target)
            check_result(result.to_json(), str(path))
