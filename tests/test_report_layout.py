"""The HTML report on a laptop screen, measured in headless Chromium at 1280x800 and 1920x1080.

A results document for the whole corpus on the eleven built-in targets and two uBPF
ones (made here, not run: the layout depends on the number of rows and columns, not
on the results), with one failing cell whose detail is one long unbroken line, and a
baseline in which that cell passed. The page is measured through the DevTools
protocol (tests/browser.py) and screenshots are written for a person to look at.
"""
import json
import struct
from pathlib import Path

import pytest

import arches
from browser import CHROMIUM, Browser
from harness.cases.corpus import find_case_files
from harness.reporting.report import write_reports
from test_cli import ROOT

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian package "
                                                         "'chromium'): the layout cannot be measured")
FAILING = "corpus/families/alu32/add32_x_boundaries.data"
TARGETS = ["interp", *arches.names(), "ubpf-x86_64", "ubpf-arm64"]
LONG_DETAIL = "differs from the little-endian interpreter in r0: " + "0123456789abcdef" * 40
MAX_REPORT_BYTES = 3 << 20


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layout")
    cases = sorted(str(Path(path).resolve().relative_to(ROOT)) for path in find_case_files([str(ROOT / "corpus")]))
    results = []
    for case in cases:
        for target in TARGETS:
            item = {"case": case, "target": target, "status": "pass", "expected": "return r0=0x1",
                    "actual": "return r0=0x1"}
            if (case, target) == (FAILING, "x86_64"):
                item.update(status="fail", actual="return r0=0x2", detail=LONG_DETAIL + "\nsecond line",
                            code_size=400)
            results.append(item)
    run = {"date": "2026-11-26T12:00:00Z", "commit": "0123456789ab",
           "versions": {"harness": "0.1.0", "Unicorn": "2.1.4"}, "targets": TARGETS, "external": {}}
    document = {"results": results, "wall_seconds": 30.0, "run": run}
    baseline = json.loads(json.dumps(document))
    next(item for item in baseline["results"] if (item["case"], item["target"]) == (FAILING, "x86_64"))["status"] = "pass"
    (out / "results.json").write_text(json.dumps(document))
    (out / "baseline.json").write_text(json.dumps(baseline))
    written = write_reports(out / "results.json", out, out / "baseline.json", root=ROOT)
    assert len(cases) > 400
    return written.html


def test_the_full_corpus_report_is_under_3_mb(report):
    assert report.stat().st_size < MAX_REPORT_BYTES, report.stat().st_size


MEASURE = """(() => {
  const rect = element => { const r = element.getBoundingClientRect();
                            return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width}; };
  const box = document.getElementById('matrix-box');
  const detail = document.querySelector('#details pre.detail');
  const versions = document.getElementById('versions');
  return {
    width: innerWidth, height: innerHeight, box: rect(box),
    box_scroll: [box.scrollWidth, box.clientWidth, box.scrollHeight, box.clientHeight],
    targets: [...document.querySelectorAll('table.matrix th.target')].map(th => [th.textContent, rect(th)]),
    details: rect(document.getElementById('details')),
    detail: detail && [detail.scrollWidth, detail.clientWidth],
    versions: [...versions.querySelectorAll('th')].map(th => [th.textContent, rect(th)]),
    overview: rect(document.getElementById('overview')),
  };
})()"""


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("width,height", [(1280, 800), (1920, 1080)])
def test_every_target_column_and_a_readable_detail_panel_fit_the_screen(report, width, height):
    url = f"file://{report}#cell={FAILING}|x86_64"
    with Browser() as browser:
        browser.open(url, width, height)
        assert browser.wait_for("document.querySelector('#details pre.detail') !== null"), "the panel stayed empty"
        browser.evaluate("document.getElementById('matrix-section').scrollIntoView()")
        page = browser.evaluate(MEASURE)
        shot = browser.screenshot(report.parent / f"report-{width}x{height}.png")
        assert png_size(shot) == (width, height)
        box = page["box"]
        # the matrix scrolls inside its own box, which fits the window: every target column is in view
        assert box["right"] <= width and box["bottom"] <= height + 1, box
        assert page["box_scroll"][2] > page["box_scroll"][3], "the matrix should scroll vertically in its box"
        assert [name for name, _ in page["targets"]] == TARGETS
        for name, column in page["targets"]:
            assert box["left"] <= column["left"] and column["right"] <= box["right"], (name, column, box)
        # the details panel sits beside the matrix, wide enough to read, and its detail text wraps
        details = page["details"]
        assert details["left"] >= box["right"] and details["right"] <= width and details["width"] >= 360
        assert page["detail"][0] <= page["detail"][1], "the long detail line does not wrap"
        # every ISA version column of the corpus pass/fail table is visible
        assert [name for name, _ in page["versions"]] == ["target", "v1", "v2", "v3", "v4"]
        for name, column in page["versions"]:
            assert column["right"] <= page["overview"]["right"], name

        # sticky header row and case column: scrolled down and right, both stay at the box's edges
        browser.evaluate("(() => { const box = document.getElementById('matrix-box'); box.scrollTop = 4000; "
                         "box.scrollLeft = 4000; })()")
        sticky = browser.evaluate("""(() => {
          const box = document.getElementById('matrix-box').getBoundingClientRect();
          const head = document.querySelector('table.matrix thead th.target').getBoundingClientRect();
          const rows = [...document.querySelectorAll('table.matrix tr.case')];
          const row = rows.find(r => r.getBoundingClientRect().top > box.top + 150);
          return [box.top, head.top, box.left, row.cells[0].getBoundingClientRect().left];
        })()""")
        assert abs(sticky[0] - sticky[1]) <= 2 and abs(sticky[2] - sticky[3]) <= 2, sticky


def test_run_facts_baseline_links_and_no_empty_groups_when_filtering(report):
    with Browser() as browser:
        browser.open(f"file://{report}", 1280, 800)
        facts = browser.evaluate("document.getElementById('run').innerText")
        for fact in ("2026-11-26T12:00:00Z", "0123456789ab", "harness", "0.1.0", "Unicorn", "2.1.4", "ubpf-arm64"):
            assert fact in facts, facts
        # the baseline's changed cell is a link that opens the cell
        browser.evaluate("document.querySelector('#changes a').click()")
        assert browser.wait_for("document.getElementById('details').innerText.includes('on x86_64')")
        assert FAILING in browser.evaluate("document.getElementById('details').innerText")
        # only rows with failures: one group is left, with its header; no other group header shows
        browser.evaluate("(() => { const box = document.getElementById('only-bad'); box.checked = true; "
                         "box.dispatchEvent(new Event('change')); })()")
        shown = browser.evaluate("""[...document.querySelectorAll('table.matrix tbody')]
            .filter(body => body.offsetParent !== null)
            .map(body => [body.dataset.group, [...body.querySelectorAll('tr.case')]
                          .filter(row => row.offsetParent !== null).length])""")
        assert shown == [["families/alu32", 1]], shown
        # a click on a matrix cell opens it too
        browser.evaluate("document.querySelector('tr.case:not(.hidden) td.cell.fail').click()")
        assert browser.wait_for(f"location.hash.includes('{FAILING}|x86_64')")
