"""Cross-architecture reports from a results JSON: Markdown, JUnit, and writing them all.

``python -m harness report RESULTS.json`` writes ``report.html`` (see
:mod:`harness.reporting.report_html`), ``summary.md`` (sized for a pull-request comment) and
``junit.xml`` (one test case per (case, target)). With ``--baseline OLD.json`` every
artefact also lists the cells whose status changed. A results file from a run that
was interrupted or stopped early says so at the top of every artefact. The data they show is built by
:mod:`harness.reporting.model`.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from harness.reporting.model import (BAD_STATUSES, ISA_GROUPS, ISA_VERSIONS, Conformance, ReportData,
                                     StatusChange, build, case_group, load_results, shown_statuses)
from harness.reporting.report_html import report_html
from harness.running.conformance import ERROR, FAIL, KNOWN, SKIP, STALE, UNSUPPORTED
from harness.running.output import write_atomically

# --- Markdown -----------------------------------------------------------------

DETAIL_CHARS = 160  # of a failing cell's detail in summary.md (the HTML and JSON have it whole)


def clipped(text: str, limit: int) -> str:
    """The first line of ``text``, cut at ``limit`` characters with an ellipsis; an ellipsis
    also says where more lines follow. Nothing is cut without a mark."""
    lines = text.strip().splitlines()
    if not lines:
        return ""
    if len(lines[0]) > limit:
        return lines[0][:limit - 1] + "…"
    return lines[0] + (" …" if len(lines) > 1 else "")


def summary_markdown(data: ReportData, max_failures: int = 15) -> str:
    """A pull-request-comment sized summary: counts, corpus pass/fail per ISA group, changes, failures."""
    lines = ["## eBPF JIT conformance", ""]
    if data.incomplete_notice:
        lines += [f"> **{data.incomplete_notice}**", ""]
    if data.run:
        lines += [run_line(data.run), ""]
    statuses = shown_statuses(data.summary)
    lines.append("| target | " + " | ".join(statuses) + " |")
    lines.append("|---|" + "---:|" * len(statuses))
    for target in data.targets:
        counts = data.summary[target]
        lines.append(f"| {target} | " + " | ".join(str(counts.get(status, 0)) for status in statuses) + " |")
    lines += ["", "Corpus pass/fail per ISA group and version (RFC 9669), per target: ✅ every corpus case "
                  "using the group passes.", ""]
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
            detail = clipped(item.get("detail") or "", DETAIL_CHARS)
            lines.append(f"- `{item['case']}` on {item['target']}: {item['status']}: {detail}".rstrip())
    known = [item for item in data.results if item["status"] == KNOWN]
    if known:
        lines += ["", f"**{len(known)} known failure(s)** (recorded in the target's known-failure file; "
                      "they do not fail the run):"]
        for item in known[:max_failures]:
            reason = clipped(item.get("detail") or "", 200)
            lines.append(f"- `{item['case']}` on {item['target']}: {reason}")
    if data.wall_seconds is not None:
        lines += ["", f"{len(data.cases)} cases x {len(data.targets)} targets in {data.wall_seconds:.1f} s."]
    return "\n".join(lines) + "\n"


def run_line(run: dict[str, Any]) -> str:
    """``Run of 2026-11-26T12:00:00Z, commit abc123, harness 0.1.0, Unicorn 2.1.4, ...``."""
    versions = ", ".join(f"{name} {version}" for name, version in (run.get("versions") or {}).items())
    return (f"Run of {run.get('date') or '?'}, commit {run.get('commit') or '(not a git checkout)'}"
            + (f", {versions}" if versions else "") + ".")


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
    if data.stopped:  # JUnit has no field for it: a property on every suite, and a comment on top
        suites.set("incomplete", data.stopped)
    for target in data.targets:
        items = [data.cells[(case, target)] for case in data.cases if (case, target) in data.cells]
        counts = data.summary[target]
        seconds = sum(sum((item.get("timings") or {}).values()) for item in items)
        suite = ElementTree.SubElement(
            suites, "testsuite", name=target, tests=str(len(items)),
            failures=str(counts.get(FAIL, 0) + counts.get(UNSUPPORTED, 0) + counts.get(STALE, 0)),
            errors=str(counts.get(ERROR, 0)), skipped=str(counts.get(SKIP, 0) + counts.get(KNOWN, 0)),
            time=f"{seconds:.6f}")
        if data.stopped:
            properties = ElementTree.SubElement(suite, "properties")
            ElementTree.SubElement(properties, "property", name="incomplete", value=data.incomplete_notice)
        for item in items:
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"{target}.{case_group(item['case']).replace('/', '.')}",
                name=Path(item["case"]).stem, file=item["case"],
                time=f"{sum((item.get('timings') or {}).values()):.6f}")
            message = clipped(item["detail"], 300) if item.get("detail") else item["status"]
            body = f"expected: {item.get('expected', '')}\nactual:   {item.get('actual', '')}\n{item.get('detail', '')}"
            if item["status"] in (FAIL, UNSUPPORTED, STALE):
                ElementTree.SubElement(case, "failure", message=message, type=item["status"]).text = body
            elif item["status"] == ERROR:
                ElementTree.SubElement(case, "error", message=message, type="error").text = body
            elif item["status"] in (SKIP, KNOWN):  # a known failure: visible, but not a failure of the run
                ElementTree.SubElement(case, "skipped", message=message, type=item["status"]).text = \
                    body if item["status"] == KNOWN else None
    ElementTree.indent(suites)
    notice = f"<!-- {data.incomplete_notice.replace('--', '- -')} -->\n" if data.stopped else ""
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + notice
            + ElementTree.tostring(suites, encoding="unicode") + "\n")


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
    document = load_results(results_path)
    baseline = load_results(baseline_path) if baseline_path else None
    data = build(document, root, baseline)
    out = Path(out_dir)
    html, markdown, junit = out / "report.html", out / "summary.md", out / "junit.xml"
    write_atomically(html, report_html(data, root, with_native=with_native))  # whole files or none
    write_atomically(markdown, summary_markdown(data))
    write_atomically(junit, junit_xml(data))
    return Written(html, markdown, junit, data)


__all__ = ["Written", "change_counts", "junit_xml", "summary_markdown", "write_reports"]
