"""Reports from a results file: summary, corpus pass/fail per ISA group, JUnit, baseline, HTML, commands."""
import base64
import gzip
import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from harness.reporting.model import ReportError, build, load_results
from harness.reporting.report import junit_xml, summary_markdown, write_reports
from browser import CHROMIUM, Browser
from test_cli import run_cli, write

# Two hand-made cases: one uses only base64 (mov, exit), one also an atomic32 form.
BASE = "-- asm\nmov %r0, 7\nexit\n-- result\n7\n"
ATOMIC = "-- asm\nstw [%r10-8], 1\nstw [%r10-4], 0\nmov %r1, 2\nlock add32 [%r10-8], %r1\nldxw %r0, [%r10-8]\nexit\n-- result\n3\n"


def results_document(tmp_path: Path, atomic_status: str = "fail") -> dict:
    (tmp_path / "corpus" / "g").mkdir(parents=True)
    write(tmp_path / "corpus" / "g", "base.data", BASE)
    write(tmp_path / "corpus" / "g", "atomic.data", ATOMIC)
    cell = {"expected": "return r0=0x3", "actual": "return r0=0x2", "detail": "r0 differs",
            "timings": {"emulate": 0.001}, "code_size": 40, "bpf_insns": 6, "bpf_executed": 5,
            "native_executed": 12}
    return {"results": [
        {"case": "corpus/g/base.data", "target": "interp", "status": "pass", **cell},
        {"case": "corpus/g/base.data", "target": "x86_64", "status": "pass", **cell},
        {"case": "corpus/g/atomic.data", "target": "interp", "status": "pass", **cell},
        {"case": "corpus/g/atomic.data", "target": "x86_64", "status": atomic_status, **cell},
    ], "wall_seconds": 1.5}


def test_summary_counts_and_isa_groups_name_the_failing_target(tmp_path):
    data = build(results_document(tmp_path), tmp_path)
    assert data.targets == ["interp", "x86_64"]
    assert data.summary["x86_64"]["pass"] == 1 and data.summary["x86_64"]["fail"] == 1
    assert data.groups["interp"]["atomic32"].passes
    assert not data.groups["x86_64"]["atomic32"].passes
    assert data.groups["x86_64"]["atomic32"].failing == ["corpus/g/atomic.data"]
    assert not data.groups["x86_64"]["base64"].passes  # the atomic case uses base64 forms too
    assert data.groups["x86_64"]["packet"].cases == 0
    markdown = summary_markdown(data)
    assert "| x86_64 | 1 | 1 | 0 | 0 | 0 |" in markdown
    assert "`corpus/g/atomic.data` on x86_64: fail" in markdown


def test_junit_has_one_testcase_per_cell_and_marks_the_failure(tmp_path):
    root = ElementTree.fromstring(junit_xml(build(results_document(tmp_path), tmp_path)))
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert set(suites) == {"interp", "x86_64"}
    assert suites["x86_64"].get("tests") == "2" and suites["x86_64"].get("failures") == "1"
    failures = [case.get("name") for case in suites["x86_64"].iter("testcase") if case.find("failure") is not None]
    assert failures == ["atomic"]


def test_known_and_stale_cells_show_in_every_artefact(tmp_path):
    """An external JIT's recorded known failure: visible everywhere, not a failure of the run;
    a stale record (the case passes now) is one."""
    document = results_document(tmp_path, atomic_status="known")
    document["results"][3]["detail"] = "known failure of x86_64: the JIT stores it zero-extended\nr0 differs"
    document["results"].append({**document["results"][1], "target": "other", "status": "stale",
                                "detail": "recorded as a known failure of other, but it passes now"})
    data = build(document, tmp_path)
    assert data.summary["x86_64"]["known"] == 1 and data.summary["other"]["stale"] == 1
    assert not data.groups["x86_64"]["atomic32"].passes  # a known failure still does not conform
    markdown = summary_markdown(data)
    assert "| target | pass | fail | error | skip | unsupported | known | stale |" in markdown
    assert "**1 known failure(s)**" in markdown and "the JIT stores it zero-extended" in markdown
    assert "`corpus/g/base.data` on other: stale" in markdown  # listed among the failing cells
    suites = {suite.get("name"): suite for suite in ElementTree.fromstring(junit_xml(data)).iter("testsuite")}
    assert suites["x86_64"].get("failures") == "0" and suites["x86_64"].get("skipped") == "1"
    assert suites["other"].get("failures") == "1"
    known = next(case for case in suites["x86_64"].iter("testcase") if case.get("name") == "atomic")
    assert known.find("skipped").get("type") == "known"
    (tmp_path / "r.json").write_text(json.dumps(document))
    page = write_reports(tmp_path / "r.json", tmp_path / "out", root=tmp_path, with_native=False).html.read_text()
    assert "<th>known</th>" in page and "<th>stale</th>" in page and "<td class='cell known'>" in page
    plain = build(results_document(tmp_path / "plain"), tmp_path / "plain")
    assert "known" not in summary_markdown(plain)  # the columns appear only when some cell has them


def test_baseline_lists_fixed_and_broken_cells(tmp_path):
    old = results_document(tmp_path, atomic_status="pass")
    new = json.loads(json.dumps(old))
    new["results"][3]["status"] = "fail"
    new["results"][1]["status"] = "error"
    data = build(new, tmp_path, baseline=old)
    assert sorted((c.case, c.kind) for c in data.changes) == [
        ("corpus/g/atomic.data", "broken"), ("corpus/g/base.data", "broken")]
    back = build(old, tmp_path, baseline=new)
    assert {c.kind for c in back.changes} == {"fixed"}
    assert "2 fixed" in summary_markdown(back)


def test_unreadable_results_are_one_line_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{\n  \"results\": [1,\n")
    with pytest.raises(ReportError, match=r"bad.json:\d+: not valid JSON"):
        load_results(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{\"rows\": []}")
    with pytest.raises(ReportError, match="not a harness results file"):
        load_results(tmp_path / "other.json")
    completed = run_cli("report", str(tmp_path / "bad.json"), "--out", str(tmp_path / "out"))
    assert completed.returncode == 2 and "not valid JSON" in completed.stderr


def test_html_is_self_contained_and_holds_every_cell(tmp_path):
    document = results_document(tmp_path)
    (tmp_path / "r.json").write_text(json.dumps(document))
    written = write_reports(tmp_path / "r.json", tmp_path / "out", root=tmp_path, with_native=False)
    page = written.html.read_text()
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    assert page.count("class='case'") == 2 and "data-case='corpus/g/atomic.data'" in page
    blob = json.loads(page.split("id='report-data'>", 1)[1].split("</script>", 1)[0])
    atomic = json.loads(gzip.decompress(base64.b64decode(blob["cases"]["corpus/g/atomic.data"])))
    assert atomic["cells"]["x86_64"]["status"] == "fail" and "lock add32" in atomic["source"]
    assert "<svg" in page  # the per-group chart
    assert written.markdown.exists() and written.junit.exists()


def test_run_with_report_writes_all_four_artefacts(tmp_path):
    write(tmp_path, "one.data", BASE)
    out = tmp_path / "rep"
    completed = run_cli("run", str(tmp_path / "one.data"), "--arch", "interp", "-n", "0", "--report", str(out))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "results.json", "summary.md"]
    again = run_cli("report", str(out / "results.json"), "--out", str(out), "--baseline", str(out / "results.json"))
    assert again.returncode == 0 and "no cell changed status" in again.stdout


def test_new_show_and_list_commands(tmp_path):
    path = tmp_path / "cases" / "fresh_case.data"
    assert run_cli("new", str(path)).returncode == 0
    assert "-- asm" in path.read_text() and "-- result" in path.read_text()
    assert run_cli("new", str(path)).returncode == 2  # never overwrites
    # the scaffold is an error on every target until its expected value is written
    todo = run_cli("show", str(path), "--arch", "interp")
    assert todo.returncode == 2 and f"{path}:" in todo.stderr and "the expected value is still TODO" in todo.stderr
    ran = run_cli("run", str(path), "--arch", "interp,x86_64", "-n", "0")
    assert ran.returncode == 1 and "1 failed" in ran.stdout, ran.stdout
    assert ran.stdout.count("the expected value is still TODO") >= 2, ran.stdout  # on interp and on x86_64
    path.write_text(path.read_text().replace("\nTODO\n", "\n0\n"))  # mov %r0, 0: r0 is 0
    shown = run_cli("show", str(path), "--arch", "interp")
    assert shown.returncode == 0 and "0: mov %r0, 0" in shown.stdout and "PASS" in shown.stdout
    listed = run_cli("list", str(tmp_path / "cases"), "--arch", "interp")
    assert listed.returncode == 0 and "1 case files" in listed.stdout
    assert "interp   2 of" in listed.stdout  # mov and exit
    assert run_cli("show", str(tmp_path / "nope.data")).returncode == 2


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian package 'chromium'; "
                                              ".ci/run installs it where it can)")
def test_report_renders_in_headless_chromium_and_a_cell_opens(tmp_path):
    """A real run's report: a passing cell names the command that prints its code; a cell
    that does not pass shows its eBPF instructions, each with the native code under it."""
    import arches

    arch = arches.names()[0]
    write(tmp_path, "case.data", ATOMIC)
    out = tmp_path / "rep"
    completed = run_cli("run", str(tmp_path / "case.data"), "--arch", f"interp,{arch}", "-n", "0", "--report", str(out))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    case = json.loads((out / "results.json").read_text())["results"][0]["case"]
    details = "document.getElementById('details').innerText"
    with Browser() as browser:
        browser.open(f"file://{out / 'report.html'}#cell={case}|{arch}", 1280, 800)
        assert browser.wait_for(f"{details}.includes('on {arch}')"), browser.evaluate(details)
        text = browser.evaluate(details)
        assert "lock add32" in text and f"ebpf-jit-harness show {case} --arch {arch}" in text
        browser.screenshot(out / "shot.png")
    document = json.loads((out / "results.json").read_text())
    for item in document["results"]:
        item["status"] = "fail" if item["target"] == arch else item["status"]
    (out / "failing.json").write_text(json.dumps(document))
    assert run_cli("report", str(out / "failing.json"), "--out", str(out / "failing")).returncode == 0
    with Browser() as browser:
        browser.open(f"file://{out / 'failing' / 'report.html'}#cell={case}|{arch}", 1280, 800)
        assert browser.wait_for("document.getElementById('native-listing') !== null")
        listing = browser.evaluate("document.getElementById('native-listing').innerText")
    assert f"each followed by the {arch} code it became" in listing
    assert re.search(r"^\s+3: lock add32 \[%r10-8\], %r1\n\s+0x[0-9a-f]+: [0-9a-f]{2}", listing, re.MULTILINE), listing
