"""The pytest plugin: corpus ``.data`` files become test items, one per case.

Collection yields one item per (case, target), so every way pytest selects tests
chooses (case, target) pairs; the items that remain are then merged, one item per
case running each of its selected targets (see :mod:`harness.running.caseitems` for
why and how they are named). Each target still gets its own
:class:`~harness.running.conformance.Result`, status, JSON record, JUnit test case
and count in the summary; a failing item explains each failing target, and its line
in pytest's short summary names the target(s) and the first differing value.

Works under pytest-xdist: an item's results ride back to the controller in
``report.user_properties`` (xdist does not carry ``config.stash``), where they are
collected for the JSON results and the summary.

Nothing is lost without a word: a ``.data`` path that is not a readable file (a
directory, a dangling or looping link) becomes an error for each target; when a
worker crashes, each target of the case it was running is an ``error`` result
("worker crashed while running this case"); any other (case, target) left without a
result at the end is an error too, unless the run was interrupted (Ctrl-C) or
stopped early (``-x``), which the results file then says. The JSON is written
atomically, to a target checked writable before any case runs. With pytest's cache
provider, ``--lf`` and ``--ff`` know the failed (case, target) pairs.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.cases.corpus import LARGE_DIR
from harness.cases.config import (DEFAULT_HELPER_SET, EMPTY_MEMORY_CHOICES, HELPER_SET_NAMES, RESULTS_CHOICES,
                                  RunDefaults)
from harness.running import conformance
from harness.running.caseitems import group_nodeid, parse_group, runs_of_one_case
from harness.running.conformance import (ERROR, FAIL, INTERP, KNOWN, PASS, SKIP, STALE, STATUSES, UNSUPPORTED,
                                         Result, all_targets, target_order)
from harness.running.coverage import Coverage, opcode_keys
from harness.running.output import file_target_problem, write_atomically
from harness.running.targets import Selection, TargetError, select

RESULTS_KEY = "ebpf_harness_results"  # user_properties entry: the JSON list of an item's results
FAILING = (FAIL, ERROR, STALE)  # statuses that fail an item (and the run)
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
    group.addoption("--helpers", dest="harness_helpers", default=DEFAULT_HELPER_SET, choices=HELPER_SET_NAMES,
                    help="helper numbering for cases whose folder has no harness.toml choosing one: "
                         "'harness' (default: maps 1-3, test helpers 100-104) or 'ubpf' (uBPF's test "
                         "helpers 0-5, as bpf_conformance's uBPF plugin and uBPF's tests use)")
    group.addoption("--empty-memory", dest="harness_empty_memory", default="mapped", choices=EMPTY_MEMORY_CHOICES,
                    help="r1 for a case without -- mem whose folder has no harness.toml choosing: "
                         "'mapped' (default: 64 KiB of zeros, r2 = 0) or 'null' (r1 = 0, as uBPF's "
                         "runners and test_bpf pass no context)")
    group.addoption("--results", dest="harness_results", default="both-orders", choices=RESULTS_CHOICES,
                    help="what -- result speaks for in a folder whose harness.toml does not say: "
                         "'both-orders' (default: every target unless -- result-be) or 'little-endian' "
                         "(suites written for little-endian runtimes: bpf_conformance, uBPF)")
    group.addoption("--allow-unsupported", dest="harness_allow_unsupported",
                    action="store_true",
                    help="do not fail the run when a backend reports an unsupported instruction")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ebpf_case: a corpus case, run on each of its selected targets")
    selection(config)  # fail early, once, on a bad or unavailable --arch (and build external JITs)
    # A failure's explanation is many lines; pytest prints it whole in the short summary when
    # it detects CI (env CI or BUILD_NUMBER). One line per failure there, on CI as at a desk.
    config.option.force_short_summary = True
    if not hasattr(config, "workerinput"):  # xdist workers report to the controller
        json_path = config.getoption("harness_json")
        problem = file_target_problem(json_path) if json_path else None
        if problem:  # found now, not after every case has run
            raise pytest.UsageError(f"--harness-json: {problem}")
        collector = ResultCollector(config)
        config.pluginmanager.register(collector, "ebpf-harness-results")
        config.pluginmanager.register(LastFailedTargets(collector), "ebpf-harness-lastfailed")
        if config.option.xmlpath:  # --junitxml
            config.pluginmanager.register(JunitPerTarget(collector), "ebpf-harness-junit")
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
    """One corpus file: yields an item per selected target (merged after selection)."""

    def collect(self) -> Iterator[pytest.Item]:
        targets = selection(self.config).targets
        key = _case_key(self.path, self.config)
        for target in targets:
            yield CaseItem.from_parent(self, name=target, case_path=key, targets=[target],
                                       file_path=str(self.path))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker sends the item ids to the controller
def pytest_collection_finish(session: pytest.Session) -> None:
    """Merge the selected (case, target) items of each case into one item per case.

    Runs after every plugin has deselected (``-k``, ``-m``, ``--deselect``, ``--lf``) and
    ordered (``--ff``) the per-target items; ``--collect-only`` shows them unmerged.
    """
    if session.config.option.collectonly:
        return
    session_targets = selection(session.config).targets
    merged: list[pytest.Item] = []
    for run in runs_of_one_case(session.items, lambda item: item.parent if isinstance(item, CaseItem) else None):
        if len(run) == 1:
            merged.append(run[0])
            continue
        first: CaseItem = run[0]  # type: ignore[assignment]
        targets = [target for item in run for target in item.targets]  # type: ignore[attr-defined]
        assert first.parent is not None
        merged.append(CaseItem.from_parent(
            first.parent, name=",".join(targets), nodeid=group_nodeid(first.parent.nodeid, targets, session_targets),
            case_path=first.case_path, targets=targets, file_path=first.file_path))
    session.items[:] = merged


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> str | None:
    """After pytest's "collected N items" (which counts (case, target) pairs): what will run."""
    cases = [item for item in items if isinstance(item, CaseItem)]
    pairs = sum(len(item.targets) for item in cases)
    if pairs == len(cases):
        return None
    return f"{pairs} (case, target) pairs run as {len(cases)} item{'s' if len(cases) > 1 else ''}, one per case"


def _same_entry(first: str, second: str) -> bool:
    """Whether two paths name the same file (compared as text where they do not resolve)."""
    try:
        return os.path.samefile(first, second)
    except (OSError, RuntimeError):  # a dangling link or a link loop
        return os.path.abspath(first) == os.path.abspath(second)


class CaseFailure(Exception):
    """Raised by a failing item; carries the failing results for the failure report."""

    def __init__(self, results: list[Result]) -> None:
        super().__init__("; ".join(result.detail for result in results))
        self.results = results


@dataclass(frozen=True)
class Headline:
    """Stands where pytest's reports keep the crash location: its message is the short summary's."""

    message: str
    nodeid: str

    def __str__(self) -> str:  # what ``--tb=line`` prints for the item
        return f"{self.nodeid}: {self.message}"


class CaseFailureText:
    """A failing item's report: its text, and the headline pytest's short summary line shows.

    pytest puts ``longrepr.reprcrash.message`` after the node id in that line (``FAILED
    corpus/x.data - x86_64: r0: got 0x2, expected 0x1``); a plain text has no such message.
    Built where reports arrive (the controller), so nothing but text crosses from a worker.
    """

    def __init__(self, text: str, headline: str, failures: int, nodeid: str) -> None:
        self.text = text
        self.reprcrash = Headline(headline, nodeid)
        self.failures = failures  # failing (case, target) results explained in the text

    def toterminal(self, out: Any) -> None:
        for line in self.text.splitlines():
            out.line(line)

    def __str__(self) -> str:
        return self.text


class CaseItem(pytest.Item):
    """One case on one or more targets: a result per target, in the order given."""

    def __init__(self, *, case_path: str, targets: list[str], file_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case_path = case_path
        self.targets = targets
        self.file_path = file_path
        self.add_marker("ebpf_case")

    def runtest(self) -> None:
        # The previous case's parse and interpreter results are not needed again: a worker's
        # memory stays that of one case, however large the corpus.
        conformance.clear_caches()
        # Run by the short (root-relative) name when it resolves, so messages stay readable.
        path = self.case_path if _same_entry(self.case_path, self.file_path) else self.file_path
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        defaults = RunDefaults(self.config.getoption("harness_helpers"),
                               self.config.getoption("harness_empty_memory"),
                               self.config.getoption("harness_results"))
        results = []
        for target in self.targets:
            result = conformance.run_item(path, target, defaults=defaults)
            result.case = self.case_path
            result.worker = worker
            result.peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            results.append(result)
        self.user_properties.append((RESULTS_KEY, json.dumps([result.to_json() for result in results])))
        failing = [result for result in results if result.status in FAILING]
        if failing:
            raise CaseFailure(failing)
        known = [result for result in results if result.status == KNOWN]
        if known:
            pytest.xfail("; ".join(result.detail.splitlines()[0] for result in known))
        if all(result.status in (SKIP, UNSUPPORTED) for result in results):
            first = results[0]
            reason = first.detail or "skipped"
            pytest.skip(f"unsupported: {reason}" if first.status == UNSUPPORTED else reason)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailure):
            from harness.running.explain import explain_failure

            texts = []
            for result in excinfo.value.results:
                _explained[0] += 1
                if _explained[0] > EXPLAINED_IN_FULL:  # thousands of listings help nobody and cost much
                    first = (result.detail or result.actual).splitlines()[0] if result.detail or result.actual else ""
                    texts.append(f"{result.case} on {result.target}: {result.status.upper()}\n  {first}")
                else:
                    texts.append(explain_failure(self.file_path, result))
            return "\n\n".join(texts)
        try:
            return super().repr_failure(excinfo)
        except Exception as error:  # a report must never become an INTERNALERROR
            return f"{self.case_path} on {', '.join(self.targets)}: {type(excinfo.value).__name__} ({error})"

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.case_path} [{','.join(self.targets)}]"


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

    One result per (case, target), keyed by the case file's node id and the target: a
    result that arrives twice replaces the first, and a crash is recorded only for the
    targets that had no result yet.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.by_key: dict[tuple[str, str], dict[str, Any]] = {}  # (file node id, target) -> result
        self.expected: set[tuple[str, str]] = set()  # the (file node id, target) pairs collected
        self.cases: dict[str, str] = {}  # file node id -> the case's name, as the items name it
        self.reported: set[str] = set()  # node ids of the corpus items that reported
        self.started = time.perf_counter()
        self.started_at = time.time()

    @property
    def results(self) -> list[dict[str, Any]]:
        return list(self.by_key.values())

    def group(self, nodeid: str) -> tuple[str, list[str]] | None:
        """(file node id, targets) of a corpus item, from its node id alone (see caseitems.py)."""
        return parse_group(nodeid, selection(self.config).targets)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        _watch.received = None
        _watch.install()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        _watch.uninstall()

    # --- which (case, target) pairs there are -----------------------------------------

    def _expect(self, nodeids: list[str]) -> None:
        for nodeid in nodeids:
            found = self.group(nodeid)
            if found:
                self.expected.update((found[0], target) for target in found[1])

    @pytest.hookimpl(trylast=True)  # after the items are merged (pytest_collection_finish above)
    def pytest_collection_finish(self, session: pytest.Session) -> None:  # in-process runs
        self._expect([item.nodeid for item in session.items if isinstance(item, CaseItem)])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._expect(ids)

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        case, separator, _ = location[2].rpartition(" [")
        found = self.group(nodeid)
        if separator and found:
            self.cases[found[0]] = case

    def _case_name(self, file: str) -> str:
        return self.cases.get(file) or _case_key(self.config.rootpath / file, self.config)

    def _add_errors(self, nodeid: str, why: str) -> None:
        """An error result for each target of the item that has none yet."""
        found = self.group(nodeid)
        if not found:
            return
        file, targets = found
        case = self._case_name(file)
        for target in targets:
            if (file, target) not in self.by_key:
                self.by_key[(file, target)] = Result(case, target, ERROR, detail=f"{case}: {why}").to_json()

    # --- results --------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)  # the headline is in place before any reporter reads the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        found = self.group(report.nodeid)
        if not found:
            return
        self.reported.add(report.nodeid)
        results: list[dict[str, Any]] = []
        for name, value in report.user_properties:
            if name == RESULTS_KEY:
                results = json.loads(value)
        for result in results:
            self.by_key[(found[0], result["target"])] = result
        if report.failed and not results:  # failed outside run_item: still one result per target
            reason = str(report.longrepr).strip().splitlines() or ["no detail"]
            self._add_errors(report.nodeid, f"the item failed outside the harness: {reason[-1][:200]}")
        if report.failed and results:
            from harness.running.explain import failure_headline

            failing = [result for result in results if result["status"] in FAILING]
            report.longrepr = CaseFailureText(str(report.longrepr), failure_headline(failing), len(failing),
                                             report.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """pytest-xdist lost the worker running ``crashitem``: each of its targets is an error."""
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "?")
        if self.group(crashitem):
            self.reported.add(crashitem)
        self._add_errors(crashitem, f"{CRASHED} ({worker} died; its other items ran on the remaining or "
                                    "replacement workers)")

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
        missing = sorted(self.expected - self.by_key.keys())
        if missing and not stopped:  # the run ended normally, yet these pairs never reported
            for file, target in missing:
                case = self._case_name(file)
                self.by_key[(file, target)] = Result(
                    case, target, ERROR, detail=f"{case}: no result came back for this case (its worker was lost "
                                                "and pytest-xdist stopped replacing crashed workers)").to_json()
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if not self.by_key and not stopped:
            return
        results = sorted(self.by_key.values(), key=lambda item: (item["case"], item["target"]))
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
        if not self.by_key and not self.stopped:
            return
        results = self.results
        summary = summarize(results)
        write = terminalreporter.write_line
        if self.explain_first:
            failed = terminalreporter.stats.get("failed", [])
            bad = sum(1 for item in results if item["status"] in FAILING)
            terminalreporter.section(f"first {EXPLAINED_IN_FULL} of {bad} failures "
                                     "(the results file has every detail)", red=True)
            shown = 0
            for report in failed:
                if shown >= EXPLAINED_IN_FULL:
                    break
                terminalreporter.write_sep("_", report.nodeid, red=True)
                text = str(report.longrepr)
                write(text)
                shown += report.longrepr.failures if isinstance(report.longrepr, CaseFailureText) else 1
        terminalreporter.section("eBPF harness summary")
        if self.stopped:
            write(f"INCOMPLETE: {self.stopped}; {self.not_run} (case, target) pair(s) have no result", red=True)
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


class LastFailedTargets:
    """Keeps pytest's ``--lf``/``--ff`` record per (case, target), not per item.

    The cache provider records the node id of each failed item; an item here runs
    several targets, and its id names no single one. After the cache provider has saved
    its record, this one replaces each corpus item's id with ``case.data::target`` for
    every target that failed (and drops the pairs that passed), so ``--lf`` collects
    exactly the failed pairs (their ids are the per-target items' ids) and merges them.
    """

    def __init__(self, collector: ResultCollector) -> None:
        self.collector = collector

    @pytest.hookimpl(trylast=True)  # after the cache provider wrote cache/lastfailed
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(session.config, "cache", None)
        if cache is None or not self.collector.reported:
            return
        lastfailed: dict[str, bool] = cache.get("cache/lastfailed", {})
        for nodeid in self.collector.reported:
            lastfailed.pop(nodeid, None)
        for (file, target), result in self.collector.by_key.items():
            pair = group_nodeid(file, [target], [])
            if result["status"] in FAILING:
                lastfailed[pair] = True
            else:
                lastfailed.pop(pair, None)
        cache.set("cache/lastfailed", lastfailed)


class JunitPerTarget:
    """Makes pytest's ``--junitxml`` file hold one test case per (case, target) (see junit.py)."""

    def __init__(self, collector: ResultCollector) -> None:
        self.collector = collector

    @pytest.hookimpl(trylast=True)  # after pytest's JUnit writer wrote the file
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from harness.running.junit import CorpusItem, split_corpus_testcases

        config = session.config
        path = os.path.normpath(os.path.abspath(os.path.expanduser(os.path.expandvars(config.option.xmlpath))))
        if not os.path.isfile(path) or not self.collector.reported:
            return
        by_key = self.collector.by_key
        items, covered = [], set()
        for nodeid in sorted(self.collector.reported):
            found = self.collector.group(nodeid)
            if found:
                file, targets = found
                items.append(CorpusItem(nodeid, file, [by_key[(file, target)] for target in targets
                                                       if (file, target) in by_key]))
                covered.update((file, target) for target in targets)
        unreported = [CorpusItem("", file, [result]) for (file, target), result in sorted(by_key.items())
                      if (file, target) not in covered]
        split_corpus_testcases(path, items, unreported, config.option.junitprefix)


__all__ = ["CaseFile", "CaseItem", "PASS", "all_targets", "interrupting_signal", "parse_targets", "summarize"]
