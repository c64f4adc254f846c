"""The report data model: what every artefact shows, computed once from a results JSON.

Read a results document (:func:`load_results`), build a :class:`ReportData` from it
(per-target counts, corpus pass/fail per ISA group and version, per-folder chart rows) and
compare it with a baseline (:func:`compare`). The writers in
:mod:`harness.reporting.report` and :mod:`harness.reporting.report_html` only format it.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import isa
from harness.running.conformance import (ERROR, FAIL, INTERP, KNOWN, PASS, SKIP, STALE, STATUSES, UNSUPPORTED,
                                         target_order)

ISA_GROUPS = ("base32", "base64", "atomic32", "atomic64", "divmul32", "divmul64", "packet")
ISA_VERSIONS = (1, 2, 3, 4)
BAD_STATUSES = (FAIL, ERROR, UNSUPPORTED, STALE)  # cells that fail a run
# A known failure keeps the run green but the target still does not conform.
NONCONFORMING = BAD_STATUSES + (KNOWN,)
OPTIONAL_STATUSES = (KNOWN, STALE)  # columns shown only when some target has one


def shown_statuses(summary: dict[str, dict[str, int]]) -> list[str]:
    """The status columns of a summary table: the usual five, plus known/stale when present."""
    return [status for status in STATUSES if status not in OPTIONAL_STATUSES
            or any(counts.get(status) for counts in summary.values())]


class ReportError(ValueError):
    """A results file that cannot be read; str() names the file."""


def load_results(path: str | Path) -> dict[str, Any]:
    """The parsed results document, checked for the fields the reports need."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as error:
        raise ReportError(f"{path}: cannot read: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}:{error.lineno}: not valid JSON: {error.msg}") from None
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, list):
        raise ReportError(f"{path}: no \"results\" list: not a harness results file")
    for index, item in enumerate(results):
        if not isinstance(item, dict) or not {"case", "target", "status"} <= item.keys():
            raise ReportError(f"{path}: result {index} lacks case, target or status")
    return document


def case_group(case: str) -> str:
    """The corpus folder a case belongs to (``corpus/alu32/x.data`` -> ``alu32``)."""
    parts = Path(case).parts
    if parts and parts[0] == "corpus":
        parts = parts[1:]
    return "/".join(parts[:-1]) or "."


@dataclass
class Conformance:
    """Whether a target passes every case that uses an ISA group (or version)."""

    cases: int = 0
    failing: list[str] = field(default_factory=list)

    @property
    def passes(self) -> bool:
        return self.cases > 0 and not self.failing


@dataclass
class StatusChange:
    case: str
    target: str
    old: str
    new: str

    @property
    def kind(self) -> str:
        if self.old == "absent":
            return "new"
        if self.new == "absent":
            return "removed"
        if self.new == PASS:
            return "fixed"
        if self.old == PASS:
            return "broken"
        return "changed"


@dataclass
class ReportData:
    """Everything the artefacts show, computed once from a results document."""

    results: list[dict[str, Any]]
    targets: list[str]
    cases: list[str]
    cells: dict[tuple[str, str], dict[str, Any]]
    summary: dict[str, dict[str, int]]
    groups: dict[str, dict[str, Conformance]]  # target -> ISA group -> conformance
    versions: dict[str, dict[int, Conformance]]
    wall_seconds: float | None = None
    coverage: dict[str, Any] | None = None
    changes: list[StatusChange] | None = None  # None: no baseline given
    stopped: str = ""  # why the run ended before every item had a result ("" for a complete run)
    not_run: int = 0  # items of an incomplete run that have no result
    run: dict[str, Any] = field(default_factory=dict)  # date, commit, versions, targets (plugin.run_metadata)

    @property
    def incomplete_notice(self) -> str:
        """The line every artefact of an incomplete run starts with ("" for a complete run)."""
        if not self.stopped:
            return ""
        return (f"INCOMPLETE RUN ({self.stopped}): {self.not_run} item(s) have no result; "
                "every count and mark below covers only the items that finished.")

    def cases_by_group(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = defaultdict(list)
        for case in self.cases:
            grouped[case_group(case)].append(case)
        return dict(sorted(grouped.items()))


def case_forms(case: str, root: Path) -> set[tuple[int, int]]:
    """The instruction forms a case uses (empty when it cannot be parsed any more)."""
    from harness.cases.corpus import CorpusError, load_case
    from harness.running.coverage import program_forms

    path = Path(case) if Path(case).is_absolute() else root / case
    try:
        return program_forms(load_case(path).program)
    except (CorpusError, OSError):
        return set()


def build(document: dict[str, Any], root: Path = Path("."),
          baseline: dict[str, Any] | None = None) -> ReportData:
    results = document["results"]
    cells = {(item["case"], item["target"]): item for item in results}
    targets = target_order({item["target"] for item in results})
    cases = sorted({item["case"] for item in results})
    summary = {target: {status: 0 for status in STATUSES} for target in targets}
    for item in results:
        summary[item["target"]][item["status"]] = summary[item["target"]].get(item["status"], 0) + 1
    forms = {case: case_forms(case, root) for case in cases}
    groups = {target: {group: Conformance() for group in ISA_GROUPS} for target in targets}
    versions = {target: {version: Conformance() for version in ISA_VERSIONS} for target in targets}
    for (case, target), item in cells.items():
        if item["status"] == SKIP:
            continue
        infos = [isa.OPCODES[key] for key in forms[case]]
        for table, keys in ((groups, {info.group for info in infos}),
                            (versions, {info.version for info in infos})):
            for key in keys:
                entry = table[target].setdefault(key, Conformance())
                entry.cases += 1
                if item["status"] in NONCONFORMING:
                    entry.failing.append(case)
    changes = compare(baseline, document) if baseline is not None else None
    stopped = document.get("stopped") or ("interrupted" if document.get("interrupted") else "")
    return ReportData(results, targets, cases, cells, summary, groups, versions,
                      document.get("wall_seconds"), document.get("coverage"), changes,
                      str(stopped), int(document.get("not_run") or 0),
                      document.get("run") if isinstance(document.get("run"), dict) else {})


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[StatusChange]:
    """Every (case, target) cell whose status differs between two results documents."""
    before = {(item["case"], item["target"]): item["status"] for item in old["results"]}
    after = {(item["case"], item["target"]): item["status"] for item in new["results"]}
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old_status, new_status = before.get(key, "absent"), after.get(key, "absent")
        if old_status != new_status:
            changes.append(StatusChange(key[0], key[1], old_status, new_status))
    return changes


def chart_rows(data: ReportData) -> dict[str, dict[str, tuple[float | None, float | None]]]:
    """Per corpus group and architecture: (native bytes per eBPF slot, native insns per eBPF insn)."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0])
    for (case, target), item in data.cells.items():
        if target == INTERP or item["status"] != PASS:
            continue
        totals = sums[(case_group(case), target)]
        if item.get("code_size") and item.get("bpf_insns"):
            totals[0] += item["code_size"]
            totals[1] += item["bpf_insns"]
        native, executed = item.get("native_executed"), item.get("bpf_executed")
        if native is not None and native >= 0 and executed:
            totals[2] += native
            totals[3] += executed
    rows: dict[str, dict[str, tuple[float | None, float | None]]] = defaultdict(dict)
    for (group, target), (code, slots, native, executed) in sorted(sums.items()):
        rows[group][target] = (code / slots if slots else None, native / executed if executed else None)
    return dict(rows)
