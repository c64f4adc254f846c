"""A one-line progress display for long runs: done/total, percent, rate, elapsed time.

It counts (case, target) results, not pytest items: an item runs a case on all its
targets (see harness/running/caseitems.py), and its node id says how many.

Registered on the controller by the plugin when ``--harness-progress`` asks for it
(``python -m harness run`` does). It replaces pytest's one character per item; when
output is not a terminal it shows nothing at all until the summary.
"""
from __future__ import annotations

import time
from typing import Any

import pytest

BAR_WIDTH = 28
REFRESH_SECONDS = 0.1


class ProgressBar:
    def __init__(self, config: pytest.Config, show: bool) -> None:
        self.config = config
        self.show = show
        self.total = 0
        self.done = 0
        self.bad = 0
        self.started = time.perf_counter()
        self.last_drawn = 0.0
        self.drawn_done = -1  # the count the line on screen shows

    def results_of(self, nodeid: str) -> int:
        """How many (case, target) results the item ``nodeid`` gives (1 for any other test)."""
        from harness.running.caseitems import parse_group
        from harness.running.plugin import selection

        found = parse_group(nodeid, selection(self.config).targets)
        return len(found[1]) if found else 1

    # Result count: in-process collection (after the items are merged), or the first xdist worker's.
    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = self.total or sum(self.results_of(item.nodeid) for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.total = max(self.total, sum(self.results_of(nodeid) for nodeid in ids))

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        """The usual categories (for the summary line) without the per-item character."""
        if report.when == "call":
            if hasattr(report, "wasxfail"):  # a known failure of an external JIT
                return "xfailed", "", "XFAIL"
            return report.outcome, "", report.outcome.upper()
        if report.skipped:
            return "skipped", "", "SKIPPED"
        if report.failed:
            return "error", "", "ERROR"
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # "???": pytest-xdist's report for the item a crashed worker was running
        if report.when in ("call", "???") or (report.when == "setup" and not report.passed):
            self.done += self.results_of(report.nodeid)
            self.bad += report.failed
            self.draw()

    def draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.show or (not force and now - self.last_drawn < REFRESH_SECONDS and self.done < self.total):
            return
        self.last_drawn = now
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        self.drawn_done = self.done
        reporter.rewrite(self.line(now), erase=True)

    def line(self, now: float) -> str:
        elapsed = now - self.started
        fraction = self.done / self.total if self.total else 0.0
        filled = int(BAR_WIDTH * fraction)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        failing = f", {self.bad} failing" if self.bad else ""
        return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total or '?'} "
                f"{100 * fraction:3.0f}%  {rate:,.0f} results/s  {elapsed:5.1f}s{failing}")

    def pytest_sessionfinish(self) -> None:
        if self.show and self.done:
            if self.drawn_done != self.done:  # the last line once: not again when it already shows the end
                self.draw(force=True)
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line("")
