"""One pytest item per case, yet every (case, target) pair selectable, counted and reported.

Each test runs plain pytest in a subprocess on a small corpus of its own, with the
cache provider on (its own ini file, so the repository's ``-p no:cacheprovider`` does
not apply), as a user of the plugin would.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from xml.etree import ElementTree

from harness.running.caseitems import group_nodeid, parse_group, runs_of_one_case
from harness.running.explain import failure_headline

ROOT = Path(__file__).resolve().parent.parent
RIGHT = "-- asm\nmov %r0, 1\nexit\n-- result\n1\n"
WRONG = "-- asm\nmov %r0, 1\nexit\n-- result\n2\n"  # the declared r0 is wrong: fails on every target
THREE = "interp,x86_64,arm64"


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "right.data").write_text(RIGHT)
    (cases / "wrong.data").write_text(WRONG)
    return tmp_path


def pytest_run(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = folder / "results.json"
    completed = subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.running.plugin", "--rootdir",
                                str(folder), "-c", str(folder / "pytest.ini"), "--harness-json", str(out),
                                *args], cwd=folder, capture_output=True, text=True, timeout=300,
                               env={**os.environ, "CI": "1", "COLUMNS": "200"})  # CI: see force_short_summary
    document = json.loads(out.read_text()) if out.exists() else {}
    return completed, document


def pairs(document: dict) -> dict[tuple[str, str], str]:
    return {(Path(item["case"]).name, item["target"]): item["status"] for item in document["results"]}


def test_node_ids_name_the_targets_an_item_runs():
    session = ["interp", "x86_64", "arm64"]
    assert group_nodeid("c/x.data", ["arm64"], session) == "c/x.data::arm64"  # as the per-target item
    assert group_nodeid("c/x.data", session, session) == "c/x.data"
    assert group_nodeid("c/x.data", ["interp", "arm64"], session) == "c/x.data::interp,arm64"
    for targets in (["arm64"], session, ["interp", "arm64"]):
        assert parse_group(group_nodeid("c/x.data", targets, session), session) == ("c/x.data", targets)
    assert parse_group("tests/test_x.py::test_y", session) is None
    assert runs_of_one_case("aabbba", lambda item: item) == [["a", "a"], ["b", "b", "b"], ["a"]]
    assert runs_of_one_case("ab", lambda item: None) == [["a"], ["b"]]


def test_one_item_per_case_and_one_result_per_target(corpus):
    completed, document = pytest_run(corpus, "cases", "--arch", THREE, "-n", "2", "-rA")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert pairs(document) == {(name, target): "pass" if name == "right.data" else "fail"
                               for name in ("right.data", "wrong.data") for target in THREE.split(",")}
    assert document["summary"]["arm64"] == {"pass": 1, "fail": 1, "error": 0, "skip": 0, "unsupported": 0,
                                            "known": 0, "stale": 0}
    assert "1 failed, 1 passed" in completed.stdout  # pytest counts items: one per case
    # the failure explains each failing target, and its short summary line names the first
    # failing target, the value it got and the declared one
    assert completed.stdout.count("cases/wrong.data on ") == 3
    assert ("FAILED cases/wrong.data - interp: little-endian: got return r0=0x1, expected return r0=0x2 "
            "(also fails on x86_64, arm64)") in completed.stdout.splitlines()  # one line, also on CI


def test_pairs_are_selected_by_node_id_and_keyword(corpus):
    completed, document = pytest_run(corpus, "cases/right.data::arm64", "cases/wrong.data::x86_64", "--arch", THREE,
                                     "-n", "0", "-v")
    assert pairs(document) == {("right.data", "arm64"): "pass", ("wrong.data", "x86_64"): "fail"}
    assert "cases/right.data::arm64 PASSED" in completed.stdout
    completed, document = pytest_run(corpus, "cases", "--arch", THREE, "-k", "not interp", "-n", "0", "-v")
    assert set(pairs(document)) == {(name, target) for name in ("right.data", "wrong.data")
                                    for target in ("x86_64", "arm64")}
    assert "cases/right.data::x86_64,arm64 PASSED" in completed.stdout
    assert "4 (case, target) pairs run as 2 items, one per case" in completed.stdout
    completed, _ = pytest_run(corpus, "cases", "--arch", THREE, "--collect-only", "-q")
    assert "cases/wrong.data::arm64" in completed.stdout.splitlines()  # collected per pair


def test_last_failed_reruns_the_failed_pairs_only(corpus):
    completed, _ = pytest_run(corpus, "cases", "--arch", THREE, "-k", "x86_64 or arm64", "-n", "2")
    assert completed.returncode == 1
    lastfailed = json.loads((corpus / ".pytest_cache/v/cache/lastfailed").read_text())
    assert lastfailed == {"cases/wrong.data::x86_64": True, "cases/wrong.data::arm64": True}
    completed, document = pytest_run(corpus, "cases", "--arch", THREE, "--lf", "-n", "0")
    assert "rerun previous 2 failures" in completed.stdout
    assert pairs(document) == {("wrong.data", "x86_64"): "fail", ("wrong.data", "arm64"): "fail"}
    (corpus / "cases/wrong.data").write_text(RIGHT)  # fixed: the pairs pass and leave the record
    completed, document = pytest_run(corpus, "cases", "--arch", THREE, "--ff", "-n", "0")
    assert completed.returncode == 0 and len(document["results"]) == 6
    assert json.loads((corpus / ".pytest_cache/v/cache/lastfailed").read_text()) == {}


def test_headline_names_the_first_difference_and_the_other_failing_targets():
    failing = [{"target": "x86_64", "status": "fail",
                "detail": "event 2: differs from the little-endian interpreter in stack at 0x2000fff8: ...",
                "first_difference": {"what": "stack", "offset": 0x2000fff8, "expected": "01 00", "actual": "ff 00"}},
               {"target": "s390x", "status": "error", "detail": "corpus/x.data: time limit: translate took longer"}]
    assert failure_headline(failing) == ("x86_64: event 2: stack at 0x2000fff8: got ff 00, expected 01 00 "
                                         "(also fails on s390x)")
    assert failure_headline(failing[1:]) == "s390x: error: time limit: translate took longer"
    ending = {"target": "arm64", "status": "fail", "detail": "",
              "first_difference": {"what": "kind", "expected": "return r0=0x1", "actual": "fault: read"}}
    assert failure_headline([ending]) == "arm64: got fault: read, expected return r0=0x1"


def test_junit_has_one_testcase_per_pair_with_its_own_explanation(corpus):
    junit = corpus / "junit.xml"
    completed, _ = pytest_run(corpus, "cases", "--arch", THREE, "-n", "2", "--junitxml", str(junit), "--tb=line")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert ("cases/wrong.data: interp: little-endian: got return r0=0x1, expected return r0=0x2 "
            "(also fails on x86_64, arm64)") in completed.stdout.splitlines()  # --tb=line: the headline
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    cases = {(case.get("classname"), case.get("name")): case for case in suite.findall("testcase")}
    assert sorted(cases) == sorted((f"cases.{name}.data", target) for name in ("right", "wrong")
                                   for target in THREE.split(","))
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "3", "0")
    assert all(not list(cases[("cases.right.data", target)]) for target in THREE.split(","))  # passed
    failure = cases[("cases.wrong.data", "arm64")].find("failure")
    assert failure.get("message") == "arm64: got return r0=0x1, expected return r0=0x2"
    assert failure.text.startswith("cases/wrong.data on arm64: FAIL")  # that target's explanation only
    assert "on x86_64" not in failure.text and "each followed by the arm64 code it became" in failure.text


def test_harness_run_takes_a_node_id(corpus):
    out = corpus / "one.json"
    completed = subprocess.run([sys.executable, "-m", "harness", "run", "cases/wrong.data::arm64", "--arch", THREE,
                                "-n", "0", "--json", str(out)], cwd=corpus, capture_output=True, text=True,
                               timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert pairs(json.loads(out.read_text())) == {("wrong.data", "arm64"): "fail"}
