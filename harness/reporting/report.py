"""Cross-architecture reports from a results JSON: the data model, Markdown and JUnit.

``python -m harness report RESULTS.json`` writes ``report.html`` (see
:mod:`harness.reporting.report_html`), ``summary.md`` (sized for a pull-request comment) and
``junit.xml`` (one test case per (case, target)). With ``--baseline OLD.json`` every
artefact also lists the cells whose status changed.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from harness import isa
from harness.running.conformance import ERROR, FAIL, INTERP, PASS, SKIP, STATUSES, UNSUPPORTED

ISA_GROUPS = ("base32", "base64", "atomic32", "atomic64", "divmul32", "divmul64", "packet")
ISA_VERSIONS = (1, 2, 3, 4)
BAD_STATUSES = (FAIL, ERROR, UNSUPPORTED)


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


def target_order(targets: set[str]) -> list[str]:
    """interp first, then the registry's order, then anything else alphabetically."""
    import arches

    registry = arches.names()
    return sorted(targets, key=lambda name: (name != INTERP, registry.index(name)
                                             if name in registry else len(registry), name))


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
                if item["status"] in BAD_STATUSES:
                    entry.failing.append(case)
    changes = compare(baseline, document) if baseline is not None else None
    return ReportData(results, targets, cases, cells, summary, groups, versions,
                      document.get("wall_seconds"), document.get("coverage"), changes)


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


# --- Markdown -----------------------------------------------------------------

def summary_markdown(data: ReportData, max_failures: int = 15) -> str:
    """A pull-request-comment sized summary: counts, ISA conformance, changes, failures."""
    lines = ["## eBPF JIT conformance", ""]
    lines.append("| target | " + " | ".join(STATUSES) + " |")
    lines.append("|---|" + "---:|" * len(STATUSES))
    for target in data.targets:
        counts = data.summary[target]
        lines.append(f"| {target} | " + " | ".join(str(counts.get(status, 0)) for status in STATUSES) + " |")
    lines += ["", "ISA conformance groups (RFC 9669), per target: ✅ every case using the group passes.", ""]
    lines.append("| target | " + " | ".join(ISA_GROUPS) + " | " + " | ".join(f"v{v}" for v in ISA_VERSIONS) + " |")
    lines.append("|---|" + ":---:|" * (len(ISA_GROUPS) + len(ISA_VERSIONS)))
    for target in data.targets:
        marks = [_mark(data.groups[target][group]) for group in ISA_GROUPS]
        marks += [_mark(data.versions[target][version]) for version in ISA_VERSIONS]
        lines.append(f"| {target} | " + " | ".join(marks) + " |")
    if data.changes is not None:
        lines += ["", f"**Changes against the baseline:** {change_counts(data.changes)}"]
        for change in [c for c in data.changes if c.kind in ("broken", "fixed")][:max_failures]:
            lines.append(f"- {change.kind}: `{change.case}` on {change.target} ({change.old} -> {change.new})")
    bad = [item for item in data.results if item["status"] in BAD_STATUSES]
    if bad:
        lines += ["", f"**{len(bad)} failing cell(s)**" + (f", first {max_failures}:" if len(bad) > max_failures else ":")]
        for item in bad[:max_failures]:
            detail = (item.get("detail") or "").splitlines()[0][:160] if item.get("detail") else ""
            lines.append(f"- `{item['case']}` on {item['target']}: {item['status']}: {detail}")
    if data.wall_seconds is not None:
        lines += ["", f"{len(data.cases)} cases x {len(data.targets)} targets in {data.wall_seconds:.1f} s."]
    return "\n".join(lines) + "\n"


def _mark(entry: Conformance) -> str:
    if entry.cases == 0:
        return "–"
    return "✅" if entry.passes else f"❌ {len(entry.failing)}"


def change_counts(changes: list[StatusChange]) -> str:
    if not changes:
        return "no cell changed status."
    counts: dict[str, int] = defaultdict(int)
    for change in changes:
        counts[change.kind] += 1
    return ", ".join(f"{counts[kind]} {kind}" for kind in ("fixed", "broken", "changed", "new", "removed")
                     if counts[kind])


# --- JUnit XML ----------------------------------------------------------------

def junit_xml(data: ReportData) -> str:
    """JUnit XML: one testsuite per target, one testcase per (case, target)."""
    suites = ElementTree.Element("testsuites", name="ebpf-jit-harness")
    for target in data.targets:
        items = [data.cells[(case, target)] for case in data.cases if (case, target) in data.cells]
        counts = data.summary[target]
        seconds = sum(sum((item.get("timings") or {}).values()) for item in items)
        suite = ElementTree.SubElement(
            suites, "testsuite", name=target, tests=str(len(items)),
            failures=str(counts.get(FAIL, 0) + counts.get(UNSUPPORTED, 0)),
            errors=str(counts.get(ERROR, 0)), skipped=str(counts.get(SKIP, 0)), time=f"{seconds:.6f}")
        for item in items:
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"{target}.{case_group(item['case']).replace('/', '.')}",
                name=Path(item["case"]).stem, file=item["case"],
                time=f"{sum((item.get('timings') or {}).values()):.6f}")
            message = (item.get("detail") or item["status"]).splitlines()[0][:300] if item.get("detail") else item["status"]
            body = f"expected: {item.get('expected', '')}\nactual:   {item.get('actual', '')}\n{item.get('detail', '')}"
            if item["status"] in (FAIL, UNSUPPORTED):
                ElementTree.SubElement(case, "failure", message=message, type=item["status"]).text = body
            elif item["status"] == ERROR:
                ElementTree.SubElement(case, "error", message=message, type="error").text = body
            elif item["status"] == SKIP:
                ElementTree.SubElement(case, "skipped", message=message)
    ElementTree.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"


# --- writing everything -------------------------------------------------------

@dataclass
class Written:
    html: Path
    markdown: Path
    junit: Path
    data: ReportData


def write_reports(results_path: str | Path, out_dir: str | Path = "reports",
                  baseline_path: str | Path | None = None, root: Path = Path("."),
                  with_native: bool = True) -> Written:
    """Write report.html, summary.md and junit.xml into ``out_dir``."""
    from harness.reporting.report_html import report_html

    document = load_results(results_path)
    baseline = load_results(baseline_path) if baseline_path else None
    data = build(document, root, baseline)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html = out / "report.html"
    html.write_text(report_html(data, root, with_native=with_native))
    markdown = out / "summary.md"
    markdown.write_text(summary_markdown(data))
    junit = out / "junit.xml"
    junit.write_text(junit_xml(data))
    return Written(html, markdown, junit, data)


__all__ = ["ReportData", "ReportError", "StatusChange", "build", "compare", "junit_xml",
           "load_results", "summary_markdown", "write_reports"]
