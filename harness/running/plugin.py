"""The pytest plugin: corpus ``.data`` files become test items, one per (case, target).

Works under pytest-xdist: each item's :class:`~harness.running.conformance.Result` rides back
to the controller in ``report.user_properties`` (xdist does not carry
``config.stash``), where it is collected for the JSON results and the summary.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.cases.corpus import LARGE_DIR
from harness.running import conformance
from harness.running.conformance import (ERROR, FAIL, INTERP, KNOWN, PASS, SKIP, STALE, STATUSES, UNSUPPORTED,
                                         Result, all_targets, target_order)
from harness.running.coverage import Coverage, opcode_keys
from harness.running.targets import Selection, TargetError, select

RESULT_KEY = "ebpf_harness_result"
SELECTION_KEY = pytest.StashKey[Selection]()


def parse_targets(text: str) -> list[str]:
    """``all``, ``default`` or a comma-separated list of target names (checked; see harness/running/targets.py)."""
    try:
        return select(text).targets
    except TargetError as error:
        raise pytest.UsageError(str(error)) from None


def selection(config: pytest.Config) -> Selection:
    """The targets of this session, chosen once per process (external JITs may build on first use)."""
    if SELECTION_KEY not in config.stash:
        try:
            config.stash[SELECTION_KEY] = select(config.getoption("harness_targets"))
        except TargetError as error:
            raise pytest.UsageError(str(error)) from None
    return config.stash[SELECTION_KEY]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ebpf-harness", "eBPF JIT harness")
    group.addoption("--targets", "--arch", dest="harness_targets", default="default",
                    help="targets to run corpus cases on: 'default' (the built-in targets plus the "
                         "external JITs that are configured, e.g. by UBPF_SRC), 'all' (the built-in "
                         "targets), or a comma list of interp, architecture and external target names, "
                         "e.g. interp,x86_64,ubpf-arm64")
    group.addoption("--harness-json", dest="harness_json", default=None, metavar="FILE",
                    help="write every (case, target) result and a per-target summary as JSON")
    group.addoption("--harness-progress", dest="harness_progress", default="none",
                    choices=("auto", "bar", "none"),
                    help="'bar': a progress bar with counts and elapsed time instead of one "
                         "character per item; 'auto': the bar on a terminal, nothing otherwise; "
                         "'none' (default): pytest's usual output")
    group.addoption("--allow-unsupported", dest="harness_allow_unsupported",
                    action="store_true",
                    help="do not fail the run when a backend reports an unsupported instruction")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ebpf_case: a corpus case run on one target")
    selection(config)  # fail early, once, on a bad or unavailable --arch (and build external JITs)
    if not hasattr(config, "workerinput"):  # xdist workers report to the controller
        config.pluginmanager.register(ResultCollector(config), "ebpf-harness-results")
        mode = config.getoption("harness_progress")
        if mode != "none":
            from harness.running.progress import ProgressBar

            interactive = sys.stdout.isatty() if mode == "auto" else True
            config.pluginmanager.register(ProgressBar(config, show=interactive), "ebpf-harness-progress")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The external JITs this session runs, and why a configured one does not run."""
    import arches

    chosen = set(selection(config).targets)
    lines = [f"external JIT {backend.name}: {backend.description.summary}, {' '.join(backend.command)}"
             for backend in (arches.get(name) for name in arches.external_names() if name in chosen)]
    return lines + [f"not run: {note}" for note in selection(config).notes]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave out LARGE_DIR directories (harness/cases/corpus.py) unless one was named."""
    if collection_path.name != LARGE_DIR or not collection_path.is_dir():
        return None
    here = collection_path.resolve()
    for argument in config.args:
        given = (config.invocation_params.dir / argument.split("::")[0]).resolve()
        if given == here or here in given.parents:
            return None
    return True


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".data":
        return CaseFile.from_parent(parent, path=file_path)
    return None


def _case_key(path: Path, config: pytest.Config) -> str:
    """The case's name in results: its path relative to the root directory when inside it."""
    try:
        return str(path.resolve().relative_to(config.rootpath.resolve()))
    except ValueError:
        return str(path)


class CaseFile(pytest.File):
    """One corpus file: yields an item per selected target."""

    def collect(self) -> Iterator[pytest.Item]:
        targets = selection(self.config).targets
        key = _case_key(self.path, self.config)
        for target in targets:
            yield CaseItem.from_parent(self, name=target, case_path=key, target=target,
                                       file_path=str(self.path))


class CaseFailure(Exception):
    """Raised by a failing item; carries the result for the failure report."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.detail)
        self.result = result


class CaseItem(pytest.Item):
    def __init__(self, *, case_path: str, target: str, file_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case_path = case_path
        self.target = target
        self.file_path = file_path
        self.add_marker("ebpf_case")

    def runtest(self) -> None:
        # Run by the short (root-relative) name when it resolves, so messages stay readable.
        path = self.case_path if Path(self.case_path).is_file() else self.file_path
        result = conformance.run_item(path, self.target)
        result.case = self.case_path
        result.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        result.peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.user_properties.append((RESULT_KEY, json.dumps(result.to_json())))
        if result.status in (FAIL, ERROR, STALE):
            raise CaseFailure(result)
        if result.status == KNOWN:
            pytest.xfail(result.detail.splitlines()[0])
        if result.status == SKIP:
            pytest.skip(result.detail or "skipped")
        if result.status == UNSUPPORTED:
            pytest.skip(f"unsupported: {result.detail}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailure):
            from harness.running.explain import explain_failure

            return explain_failure(self.file_path, excinfo.value.result)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.case_path} [{self.target}]"


def coverage_of(results: list[dict[str, Any]]) -> Coverage:
    """Opcode coverage from the forms each result carries (no case is parsed again)."""
    coverage = Coverage(total=len(opcode_keys()))
    for item in results:
        coverage.covered |= {tuple(form) for form in item.get("forms", [])}
    return coverage


def summarize(results: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Counts of each status per target."""
    summary: dict[str, dict[str, int]] = {}
    for result in results:
        counts = summary.setdefault(result["target"], {status: 0 for status in STATUSES})
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    return summary


class ResultCollector:
    """Gathers the results that reach this process (the controller under xdist)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[dict[str, Any]] = []
        self.started = time.perf_counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == RESULT_KEY:
                self.results.append(json.loads(value))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        config = self.config
        if not self.results:
            return
        results = sorted(self.results, key=lambda item: (item["case"], item["target"]))
        summary = summarize(results)
        path = config.getoption("harness_json")
        if path:
            coverage = coverage_of(results)
            document = {"results": results, "summary": summary,
                        "coverage": {"covered": coverage.covered_count, "total": coverage.total,
                                     "missing": coverage.missing_names},
                        "wall_seconds": round(time.perf_counter() - self.started, 3)}
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(document, indent=1) + "\n")
        unsupported = sum(counts.get(UNSUPPORTED, 0) for counts in summary.values())
        if unsupported and not config.getoption("harness_allow_unsupported") \
                and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int,
                                config: pytest.Config) -> None:
        if not self.results:
            return
        summary = summarize(self.results)
        write = terminalreporter.write_line
        terminalreporter.section("eBPF harness summary")
        # known and stale (external JITs' recorded failures) only when some target has one
        statuses = [status for status in STATUSES if status not in (KNOWN, STALE)
                    or any(counts.get(status) for counts in summary.values())]
        width = max([10] + [len(target) + 2 for target in summary])
        write(f"{'target':<{width}}" + "".join(f"{status:>13}" for status in statuses))
        for target in target_order(set(summary)):
            counts = summary[target]
            write(f"{target:<{width}}" + "".join(f"{counts.get(status, 0):>13}" for status in statuses))
        for note in selection(config).notes:
            write(f"not run: {note}")
        stale = sum(counts.get(STALE, 0) for counts in summary.values())
        if stale:
            write(f"{stale} known failure(s) pass now (stale): remove them from the known-failure file")
        cases = sorted({item["case"] for item in self.results})
        coverage = coverage_of(self.results)
        write(f"opcode coverage: {coverage.covered_count} of {coverage.total} instruction forms "
              f"used by the {len(cases)} case(s) run")
        unsupported = sum(counts.get(UNSUPPORTED, 0) for counts in summary.values())
        if unsupported and not config.getoption("harness_allow_unsupported"):
            write(f"{unsupported} unsupported result(s) count as failures "
                  "(--allow-unsupported to accept them)")
        json_path = config.getoption("harness_json")
        if json_path:
            write(f"results written to {json_path}")


__all__ = ["CaseFile", "CaseItem", "PASS", "all_targets", "parse_targets", "summarize"]
