"""The pytest plugin: corpus ``.data`` files become test items, one per (case, target).

Works under pytest-xdist: each item's :class:`~harness.running.conformance.Result` rides back
to the controller in ``report.user_properties`` (xdist does not carry
``config.stash``), where it is collected for the JSON results and the summary.

Nothing is lost without a word: a ``.data`` path that is not a readable file (a
directory, a dangling or looping link) becomes an error item; an item whose worker
crashed is an ``error`` result ("worker crashed while running this case"); any other
item left without a result at the end is an error too, unless the run was
interrupted (Ctrl-C) or stopped early (``-x``), which the results file then says.
The JSON is written atomically, to a target checked writable before any case runs.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.running import conformance
from harness.running.conformance import (ERROR, FAIL, INTERP, KNOWN, PASS, SKIP, STALE, STATUSES, UNSUPPORTED,
                                         Result, all_targets, target_order)
from harness.running.coverage import Coverage, opcode_keys
from harness.running.output import file_target_problem, write_atomically
from harness.running.targets import Selection, TargetError, select

RESULT_KEY = "ebpf_harness_result"
SELECTION_KEY = pytest.StashKey[Selection]()
# Failures explained in full (expected, actual, listings), per process and in the terminal; the
# others get one line each. The results file has every detail of every item regardless.
EXPLAINED_IN_FULL = 50
_explained = [0]  # failures this process has explained


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
        json_path = config.getoption("harness_json")
        problem = file_target_problem(json_path) if json_path else None
        if problem:  # found now, not after every case has run
            raise pytest.UsageError(f"--harness-json: {problem}")
        config.pluginmanager.register(ResultCollector(config), "ebpf-harness-results")
        mode = config.getoption("harness_progress")
        if mode != "none":
            from harness.running.progress import ProgressBar

            interactive = sys.stdout.isatty() if mode == "auto" else True
            config.pluginmanager.register(ProgressBar(config, show=interactive), "ebpf-harness-progress")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The harness's and its engines' versions, the external JITs this session runs, and why a
    configured one does not run."""
    import arches
    from harness.about import version_line

    chosen = set(selection(config).targets)
    lines = [f"external JIT {backend.name}: {backend.description.summary}, {' '.join(backend.command)}"
             for backend in (arches.get(name) for name in arches.external_names() if name in chosen)]
    return [version_line()] + lines + [f"not run: {note}" for note in selection(config).notes]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".data":
        try:
            file_path.resolve().relative_to(parent.config.rootpath.resolve())
        except ValueError:  # outside the root directory pytest would name every such item "::target"
            return CaseFile.from_parent(parent, path=file_path, nodeid=str(file_path))
        return CaseFile.from_parent(parent, path=file_path)
    return None


def _broken_entries(folder: Path) -> list[Path]:
    """``.data`` entries pytest's own walk skips: dangling links and link loops."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return []
    return [Path(entry.path) for entry in entries if entry.name.endswith(".data") and not _walked(entry)]


def _walked(entry: os.DirEntry) -> bool:
    """Whether pytest's walk visits the entry (a file or a folder it can stat)."""
    try:
        return entry.is_file() or entry.is_dir()
    except OSError:  # e.g. a link loop
        return False


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A directory named ``*.data`` is an error item, not a silently empty folder; a folder
    holding broken ``.data`` links is walked by :class:`CorpusDir`, which reports them."""
    if path.suffix == ".data":
        return CaseFile.from_parent(parent, path=path)
    if not (path / "__init__.py").exists() and _broken_entries(path):
        return CorpusDir.from_parent(parent, path=path)
    return None


class CorpusDir(pytest.Dir):
    """pytest's directory walk, plus an error item for each broken ``.data`` link in it."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        yield from super().collect()
        for path in _broken_entries(self.path):
            yield CaseFile.from_parent(self, path=path)


def _case_key(path: Path, config: pytest.Config) -> str:
    """The case's name in results: its path relative to the root directory when inside it."""
    try:  # the folder resolved, not the file: a linked case keeps its own name (and may dangle)
        return str((path.parent.resolve() / path.name).relative_to(config.rootpath.resolve()))
    except (ValueError, OSError, RuntimeError):
        return str(path)


class CaseFile(pytest.File):
    """One corpus file: yields an item per selected target."""

    def collect(self) -> Iterator[pytest.Item]:
        targets = selection(self.config).targets
        key = _case_key(self.path, self.config)
        for target in targets:
            yield CaseItem.from_parent(self, name=target, case_path=key, target=target,
                                       file_path=str(self.path))


def _same_entry(first: str, second: str) -> bool:
    """Whether two paths name the same file (compared as text where they do not resolve)."""
    try:
        return os.path.samefile(first, second)
    except (OSError, RuntimeError):  # a dangling link or a link loop
        return os.path.abspath(first) == os.path.abspath(second)


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
        path = self.case_path if _same_entry(self.case_path, self.file_path) else self.file_path
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

            result = excinfo.value.result
            _explained[0] += 1
            if _explained[0] > EXPLAINED_IN_FULL:  # thousands of listings help nobody and cost much
                return f"{result.case} on {result.target}: {result.status.upper()}\n  " \
                       f"{(result.detail or result.actual).splitlines()[0] if result.detail or result.actual else ''}"
            return explain_failure(self.file_path, result)
        try:
            return super().repr_failure(excinfo)
        except Exception as error:  # a report must never become an INTERNALERROR
            return f"{self.case_path} on {self.target}: {type(excinfo.value).__name__} ({error})"

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


def run_metadata(config: pytest.Config, started: float) -> dict[str, Any]:
    """What made these results: when, the harness's commit and versions, and the targets
    (external JITs with the command that ran them), for the reports' header."""
    import arches
    from harness.about import commit, versions

    targets = selection(config).targets
    external = {}
    for name in targets:
        if name in arches.external_names():
            backend = arches.get(name)
            external[name] = f"{backend.description.summary}: {' '.join(backend.command)}"
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "commit": commit(),
            "versions": versions(), "targets": targets, "external": external,
            "workers": getattr(config.option, "numprocesses", None) or 0}


CRASHED = "worker crashed while running this case"


def _corpus_node(nodeid: str) -> tuple[str, str] | None:
    """(file part, target) of a corpus item's node id; None for any other test."""
    file, separator, target = nodeid.rpartition("::")
    if not separator or "::" in file or not file.endswith(".data"):
        return None
    return file, target


class _SignalWatch:
    """Turns SIGINT and SIGTERM into pytest's KeyboardInterrupt, remembering which came.

    pytest reports every early end (a collection error, ``-x``, Ctrl-C) with the
    same exit status, so the signal itself is what marks a run as interrupted.
    """

    WATCHED = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number in self.WATCHED:
            self._previous[number] = signal.signal(number, self._on_signal)

    def _on_signal(self, number: int, frame: Any) -> None:
        if self.received is None:
            self.received = number
        raise KeyboardInterrupt

    def uninstall(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


_watch = _SignalWatch()


def interrupting_signal() -> int | None:
    """The signal (SIGINT or SIGTERM) that interrupted the last run in this process, if any."""
    return _watch.received


class ResultCollector:
    """Gathers the results that reach this process (the controller under xdist).

    One result per (case, target): a result that arrives twice replaces the first,
    and a crash is recorded only for an item that had no result yet.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.by_node: dict[str, dict[str, Any]] = {}  # node id -> result
        self.expected: set[str] = set()  # node ids of the corpus items collected
        self.names: dict[str, tuple[str, str]] = {}  # node id -> (case, target), as the item names them
        self.started = time.perf_counter()
        self.started_at = time.time()

    @property
    def results(self) -> list[dict[str, Any]]:
        return list(self.by_node.values())

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        _watch.received = None
        _watch.install()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        _watch.uninstall()

    # --- which items there are ------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:  # in-process runs
        self.expected.update(item.nodeid for item in session.items if isinstance(item, CaseItem))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.expected.update(nodeid for nodeid in ids if _corpus_node(nodeid))

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        case, separator, target = location[2].rpartition(" [")
        if separator and _corpus_node(nodeid):
            self.names[nodeid] = (case, target.rstrip("]"))

    def _name(self, nodeid: str) -> tuple[str, str]:
        if nodeid in self.names:
            return self.names[nodeid]
        file, target = _corpus_node(nodeid) or (nodeid, "?")
        return _case_key(self.config.rootpath / file, self.config), target

    def _add_error(self, nodeid: str, why: str) -> None:
        case, target = self._name(nodeid)
        self.by_node[nodeid] = Result(case, target, ERROR, detail=f"{case}: {why}").to_json()

    # --- results --------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == RESULT_KEY:
                self.by_node[report.nodeid] = json.loads(value)
                return
        if report.failed and _corpus_node(report.nodeid):  # failed outside run_item: still one result
            reason = str(report.longrepr).strip().splitlines() or ["no detail"]
            self._add_error(report.nodeid, f"the item failed outside the harness: {reason[-1][:200]}")

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """pytest-xdist lost the worker running ``crashitem``: that item is an error."""
        if crashitem in self.by_node or not _corpus_node(crashitem):
            return  # its result arrived before the worker died
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "?")
        self._add_error(crashitem, f"{CRASHED} ({worker} died; its other items ran on the remaining or replacement workers)")

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        config = self.config
        if config.option.collectonly:  # --collect-only ran nothing: no result is missing
            return
        stopped = ""
        if _watch.received is not None:
            stopped = f"interrupted by {signal.Signals(_watch.received).name}"
        elif session.shouldfail:
            stopped = f"stopped early: {session.shouldfail}"
            if session.exitstatus == pytest.ExitCode.INTERRUPTED:  # xdist ends -x runs this way
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        missing = sorted(self.expected - self.by_node.keys())
        if missing and not stopped:  # the run ended normally, yet these items never reported
            for nodeid in missing:
                self._add_error(nodeid, "no result came back for this item (its worker was lost and "
                                        "pytest-xdist stopped replacing crashed workers)")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if not self.by_node and not stopped:
            return
        results = sorted(self.by_node.values(), key=lambda item: (item["case"], item["target"]))
        summary = summarize(results)
        path = config.getoption("harness_json")
        if path:
            coverage = coverage_of(results)
            document = {"results": results, "summary": summary,
                        "coverage": {"covered": coverage.covered_count, "total": coverage.total,
                                     "missing": coverage.missing_names},
                        "wall_seconds": round(time.perf_counter() - self.started, 3),
                        "interrupted": _watch.received is not None,
                        "stopped": stopped, "not_run": len(missing) if stopped else 0,
                        "run": run_metadata(config, self.started_at)}
            write_atomically(path, json.dumps(document, indent=1) + "\n")
        self.stopped, self.not_run = stopped, (len(missing) if stopped else 0)
        bad = sum(1 for item in results if item["status"] in (FAIL, ERROR))
        if bad > EXPLAINED_IN_FULL and config.option.tbstyle != "no":
            # pytest prints each failure after scanning every report of the run (quadratic: hours
            # for 40,000 failures); this plugin prints the first ones itself in its summary.
            config.option.tbstyle = "no"
            self.explain_first = True
        unsupported = sum(counts.get(UNSUPPORTED, 0) for counts in summary.values())
        if unsupported and not config.getoption("harness_allow_unsupported") \
                and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    stopped = ""
    not_run = 0
    explain_first = False

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int,
                                config: pytest.Config) -> None:
        if not self.by_node and not self.stopped:
            return
        results = self.results
        summary = summarize(results)
        write = terminalreporter.write_line
        if self.explain_first:
            failed = terminalreporter.stats.get("failed", [])
            terminalreporter.section(f"first {EXPLAINED_IN_FULL} of {len(failed)} failures "
                                     "(the results file has every detail)", red=True)
            for report in failed[:EXPLAINED_IN_FULL]:
                terminalreporter.write_sep("_", report.nodeid, red=True)
                write(str(report.longrepr))
        terminalreporter.section("eBPF harness summary")
        if self.stopped:
            write(f"INCOMPLETE: {self.stopped}; {self.not_run} item(s) have no result", red=True)
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
        cases = sorted({item["case"] for item in results})
        coverage = coverage_of(results)
        write(f"opcode coverage: {coverage.covered_count} of {coverage.total} instruction forms "
              f"used by the {len(cases)} case(s) run")
        unsupported = sum(counts.get(UNSUPPORTED, 0) for counts in summary.values())
        if unsupported and not config.getoption("harness_allow_unsupported"):
            write(f"{unsupported} unsupported result(s) count as failures "
                  "(--allow-unsupported to accept them)")
        json_path = config.getoption("harness_json")
        if json_path:
            write(f"results written to {json_path}" + (" (marked incomplete)" if self.stopped else ""))


__all__ = ["CaseFile", "CaseItem", "PASS", "all_targets", "interrupting_signal", "parse_targets", "summarize"]
