"""``report.html``: one self-contained page (inline CSS, JS and SVG; no network).

The matrix of cases against targets is static HTML, so it reads even without
JavaScript; clicking a cell (or opening ``report.html#cell=CASE|TARGET``) shows the
case's details from a JSON blob embedded in the page: its source, expected vs actual,
the eBPF listing beside the target's native listing, code size, instructions
executed and times.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from harness.running.conformance import INTERP
from harness.reporting.model import (BAD_STATUSES, ISA_GROUPS, ISA_VERSIONS, Conformance, ReportData, case_group,
                                     chart_rows, shown_statuses)

MAX_LISTING_LINES = 400
# known: a recorded known failure of an external JIT (fails, does not fail the run);
# stale: a recorded known failure that passes now (fails the run until its record goes).
MAX_SOURCE_BYTES = 64 << 10  # of a case file shown in the report (the largest corpus case is 6.3 KiB)
STATUS_COLOURS = {"pass": "#2e9d4f", "fail": "#d93f3f", "error": "#8e2bb0", "skip": "#9aa4ad",
                  "unsupported": "#e49b1f", "known": "#c48a8a", "stale": "#1f6fb4"}
TARGET_COLOURS = ["#3d6fd9", "#d9763d", "#2e9d8f", "#b03d8e", "#7a8a2e", "#6b4fd9", "#444"]

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2329;background:#f6f7f9}
header{background:#1d2329;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px} header p{margin:4px 0 0;color:#c8d0d8}
header p.incomplete{background:#b3261e;color:#fff;font-weight:bold;padding:6px 10px;margin-top:8px}
main{display:flex;gap:16px;padding:16px 24px;align-items:flex-start}
#left{flex:1 1 55%;min-width:0} #details{flex:1 1 45%;position:sticky;top:8px;max-height:96vh;overflow:auto;
background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:12px 16px}
section{overflow-x:auto;background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:10px 16px;margin-bottom:16px}
h2{font-size:16px;margin:4px 0 10px} table{border-collapse:collapse}
th,td{padding:3px 8px;text-align:right;border-bottom:1px solid #eef0f2} th{background:#f0f2f5}
td.name,th.name{text-align:left;font-family:ui-monospace,monospace;font-size:12px}
table.matrix td.cell{padding:0;width:64px;text-align:center}
table.matrix td.cell a{display:block;color:#fff;text-decoration:none;font-size:11px;padding:3px 0}
tr.group th{text-align:left;background:#e4e8ec}
.yes{color:#2e9d4f;font-weight:600}.no{color:#d93f3f;font-weight:600}.none{color:#9aa4ad}
pre{background:#f6f7f9;border:1px solid #e1e5e9;padding:6px 8px;overflow:auto;font-size:12px;margin:4px 0}
.cols{display:flex;gap:8px}.cols>div{flex:1;min-width:0}
#filter{margin-bottom:8px} .hidden{display:none}
.kv td{text-align:left} .legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-1px}
"""

JS = """
const DATA = JSON.parse(document.getElementById('report-data').textContent);
function esc(s){return String(s).replace(/[&<>]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));}
function pre(lines){return '<pre>'+esc(Array.isArray(lines)?lines.join('\\n'):lines)+'</pre>';}
function show(key){
  const [cs, target] = key.split('|');
  const cell = DATA.cells[key], info = DATA.cases[cs];
  const box = document.getElementById('details');
  if(!cell||!info){box.innerHTML='<p>No result for '+esc(key)+'</p>';return;}
  let h = '<h2>'+esc(cs)+' <small>on '+esc(target)+'</small></h2>';
  h += '<table class="kv"><tr><th>status</th><td><b style="color:'+DATA.colours[cell.status]+'">'+esc(cell.status)+'</b></td></tr>';
  h += '<tr><th>expected</th><td>'+esc(cell.expected||'')+'</td></tr><tr><th>actual</th><td>'+esc(cell.actual||'')+'</td></tr>';
  if(cell.first_difference){const d=cell.first_difference;
    h += '<tr><th>first difference</th><td>'+esc(d.what)+(d.offset!=null?' at 0x'+d.offset.toString(16):'')+
         ': expected ['+esc(d.expected)+'] actual ['+esc(d.actual)+']</td></tr>';}
  if(cell.detail) h += '<tr><th>detail</th><td>'+pre(cell.detail)+'</td></tr>';
  h += '<tr><th>native code</th><td>'+(cell.code_size!=null?cell.code_size+' bytes':'–')+'</td></tr>';
  h += '<tr><th>executed</th><td>'+(cell.bpf_executed!=null?cell.bpf_executed+' eBPF':'–')+
       (cell.native_executed!=null&&cell.native_executed>=0?', '+cell.native_executed+' native':'')+'</td></tr>';
  const t = cell.timings||{};
  h += '<tr><th>times</th><td>'+Object.keys(t).map(k=>esc(k)+' '+(t[k]*1e3).toFixed(3)+' ms').join(', ')+'</td></tr></table>';
  if(info.description) h += '<h3>Description</h3>'+pre(info.description);
  h += '<div class="cols"><div><h3>eBPF</h3>'+pre(info.ebpf)+'</div>';
  if(target !== 'interp') h += '<div id="native-listing"><h3>'+esc(target)+' native</h3>'+pre(cell.native||['(not available)'])+'</div>';
  h += '</div><h3>Source</h3>'+pre(info.source);
  box.innerHTML = h;
}
function fromHash(){const m = decodeURIComponent(location.hash).match(/^#cell=(.*)$/); if(m) show(m[1]);}
window.addEventListener('hashchange', fromHash); fromHash();
document.getElementById('filter').addEventListener('input', applyFilter);
document.getElementById('only-bad').addEventListener('change', applyFilter);
function applyFilter(){
  const text = document.getElementById('filter').value.toLowerCase();
  const bad = document.getElementById('only-bad').checked;
  document.querySelectorAll('table.matrix tr.case').forEach(row=>{
    const hide = (text && !row.dataset.case.toLowerCase().includes(text)) || (bad && row.dataset.bad !== '1');
    row.classList.toggle('hidden', hide);
  });
}
"""


def report_html(data: ReportData, root: Path = Path("."), with_native: bool = True) -> str:
    """The whole page as one string."""
    payload = {"colours": STATUS_COLOURS, "cases": _case_payload(data, root),
               "cells": _cell_payload(data, root, with_native)}
    blob = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>eBPF JIT conformance report</title>", f"<style>{CSS}</style></head><body>",
        _header(data), "<main><div id='left'>", _summary_section(data), _conformance_section(data),
        _changes_section(data), _chart_section(data), _matrix_section(data),
        "</div><aside id='details'><h2>Details</h2><p>Click a cell of the matrix to see the case's "
        "source, expected and actual outcome, and the eBPF beside the native code.</p></aside></main>",
        f"<script type='application/json' id='report-data'>{blob}</script>", f"<script>{JS}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _header(data: ReportData) -> str:
    facts = [f"{len(data.cases)} cases", f"{len(data.targets)} targets",
             f"{len(data.results)} results"]
    if data.wall_seconds is not None:
        facts.append(f"run took {data.wall_seconds:.1f} s")
    if data.coverage:
        facts.append(f"opcode coverage {data.coverage.get('covered')} of {data.coverage.get('total')} forms")
    banner = (f"<p id='incomplete' class='incomplete'>{html.escape(data.incomplete_notice)}</p>"
              if data.stopped else "")
    return f"<header><h1>eBPF JIT conformance</h1><p>{' · '.join(facts)}</p>{banner}</header>"


def _summary_section(data: ReportData) -> str:
    statuses = shown_statuses(data.summary)
    rows = ["<tr><th class='name'>target</th>" + "".join(f"<th>{s}</th>" for s in statuses) + "</tr>"]
    for target in data.targets:
        counts = data.summary[target]
        rows.append(f"<tr><td class='name'>{html.escape(target)}</td>" + "".join(
            f"<td style='color:{STATUS_COLOURS[s] if counts.get(s) and s != 'pass' else 'inherit'}'>"
            f"{counts.get(s, 0)}</td>" for s in statuses) + "</tr>")
    return f"<section id='summary'><h2>Summary per target</h2><table>{''.join(rows)}</table></section>"


def _conformance_cell(entry: Conformance) -> str:
    if entry.cases == 0:
        return "<td class='none' title='no case uses it'>–</td>"
    if entry.passes:
        return f"<td class='yes' title='{entry.cases} cells'>✔</td>"
    title = html.escape(", ".join(entry.failing[:10]), quote=True)
    return f"<td class='no' title='{title}'>✘ {len(entry.failing)}</td>"


def _conformance_section(data: ReportData) -> str:
    head = ("<tr><th class='name'>target</th>" + "".join(f"<th>{g}</th>" for g in ISA_GROUPS)
            + "".join(f"<th>v{v}</th>" for v in ISA_VERSIONS) + "</tr>")
    rows = [head]
    for target in data.targets:
        rows.append(f"<tr><td class='name'>{html.escape(target)}</td>"
                    + "".join(_conformance_cell(data.groups[target][g]) for g in ISA_GROUPS)
                    + "".join(_conformance_cell(data.versions[target][v]) for v in ISA_VERSIONS) + "</tr>")
    return ("<section id='conformance'><h2>ISA conformance groups and versions (RFC 9669)</h2>"
            "<p>✔: every case that uses an instruction of the group passes on the target; "
            "✘ N: N failing cells (hover for the cases).</p>"
            f"<table>{''.join(rows)}</table></section>")


def _changes_section(data: ReportData) -> str:
    if data.changes is None:
        return ""
    if not data.changes:
        return "<section id='changes'><h2>Changes against the baseline</h2><p>No cell changed status.</p></section>"
    rows = ["<tr><th class='name'>change</th><th class='name'>case</th><th class='name'>target</th>"
            "<th class='name'>before</th><th class='name'>after</th></tr>"]
    for change in sorted(data.changes, key=lambda c: (["broken", "fixed", "changed", "new", "removed"]
                                                       .index(c.kind), c.case, c.target)):
        colour = {"broken": STATUS_COLOURS["fail"], "fixed": STATUS_COLOURS["pass"]}.get(change.kind, "inherit")
        rows.append(f"<tr><td class='name' style='color:{colour}'>{change.kind}</td>"
                    f"<td class='name'>{html.escape(change.case)}</td><td class='name'>{change.target}</td>"
                    f"<td class='name'>{change.old}</td><td class='name'>{change.new}</td></tr>")
    return (f"<section id='changes'><h2>Changes against the baseline ({len(data.changes)})</h2>"
            f"<table>{''.join(rows)}</table></section>")


def _chart_section(data: ReportData) -> str:
    rows = chart_rows(data)
    arches = [t for t in data.targets if t != INTERP]
    if not rows or not arches:
        return ""
    charts = [_bar_chart(rows, arches, 0, "native code bytes per eBPF instruction slot"),
              _bar_chart(rows, arches, 1, "native instructions executed per eBPF instruction executed")]
    legend = "".join(f"<span style='background:{TARGET_COLOURS[i % len(TARGET_COLOURS)]}'></span>{html.escape(a)}"
                     for i, a in enumerate(arches))
    return (f"<section id='chart'><h2>Targets compared, per corpus group (passing cells)</h2>"
            f"<div class='legend'>{legend}</div>{''.join(charts)}</section>")


def _bar_chart(rows: dict[str, dict[str, tuple[float | None, float | None]]], arches: list[str],
               metric: int, title: str) -> str:
    groups = sorted(rows)
    values = [rows[g].get(a, (None, None))[metric] for g in groups for a in arches]
    top = max([v for v in values if v is not None] or [1.0])
    bar, gap, height, left = 7, 10, 150, 40
    width = left + len(groups) * (len(arches) * bar + gap) + 10
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 90}' role='img'>"
           f"<title>{html.escape(title)}</title>",
           f"<text x='{left}' y='12' font-size='12'>{html.escape(title)}</text>"]
    for fraction in (0, 0.5, 1):
        y = 20 + height * (1 - fraction)
        svg.append(f"<line x1='{left}' x2='{width}' y1='{y}' y2='{y}' stroke='#dde'/>"
                   f"<text x='{left - 4}' y='{y + 4}' font-size='10' text-anchor='end'>{top * fraction:.1f}</text>")
    for gi, group in enumerate(groups):
        x0 = left + gi * (len(arches) * bar + gap)
        for ai, arch in enumerate(arches):
            value = rows[group].get(arch, (None, None))[metric]
            if value is None:
                continue
            h = height * value / top
            svg.append(f"<rect x='{x0 + ai * bar}' y='{20 + height - h:.1f}' width='{bar - 1}' height='{h:.1f}' "
                       f"fill='{TARGET_COLOURS[ai % len(TARGET_COLOURS)]}'><title>{html.escape(group)} "
                       f"{html.escape(arch)}: {value:.2f}</title></rect>")
        label_x = x0 + len(arches) * bar / 2
        svg.append(f"<text x='{label_x}' y='{height + 30}' font-size='10' text-anchor='end' "
                   f"transform='rotate(-45 {label_x} {height + 30})'>{html.escape(group)}</text>")
    svg.append("</svg>")
    return "<div>" + "".join(svg) + "</div>"


def _matrix_section(data: ReportData) -> str:
    head = "<tr><th class='name'>case</th>" + "".join(f"<th>{html.escape(t)}</th>" for t in data.targets) + "</tr>"
    rows = [head]
    for group, cases in data.cases_by_group().items():
        bad = sum(1 for c in cases for t in data.targets
                  if data.cells.get((c, t), {}).get("status") in BAD_STATUSES)
        rows.append(f"<tr class='group'><th colspan='{len(data.targets) + 1}'>{html.escape(group)} "
                    f"({len(cases)} cases{', ' + str(bad) + ' failing cells' if bad else ''})</th></tr>")
        for case in cases:
            cells, row_bad = [], False
            for target in data.targets:
                item = data.cells.get((case, target))
                if item is None:
                    cells.append("<td class='cell'></td>")
                    continue
                status = item["status"]
                row_bad |= status in BAD_STATUSES
                key = html.escape(f"{case}|{target}", quote=True)
                cells.append(f"<td class='cell' style='background:{STATUS_COLOURS.get(status, '#666')}'>"
                             f"<a href='#cell={key}' data-key='{key}' title='{html.escape(status)}'>"
                             f"{status}</a></td>")
            rows.append(f"<tr class='case' data-case='{html.escape(case, quote=True)}' data-bad='{int(row_bad)}'>"
                        f"<td class='name'>{html.escape(Path(case).name)}</td>{''.join(cells)}</tr>")
    return ("<section id='matrix-section'><h2>Cases × targets</h2>"
            "<div><input id='filter' placeholder='filter cases' size='30'> "
            "<label><input type='checkbox' id='only-bad'> only rows with failures</label></div>"
            f"<table class='matrix'>{''.join(rows)}</table></section>")


def _truncate(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LISTING_LINES:
        return lines
    return lines[:MAX_LISTING_LINES] + [f"... {len(lines) - MAX_LISTING_LINES} more lines"]


def _case_payload(data: ReportData, root: Path) -> dict[str, dict[str, Any]]:
    from harness.cases.corpus import CorpusError, load_case
    from harness.running.explain import ebpf_listing

    cases = {}
    for case in data.cases:
        path = Path(case) if Path(case).is_absolute() else root / case
        try:
            with open(path, "rb") as file:
                raw = file.read(MAX_SOURCE_BYTES + 1)
            source = raw[:MAX_SOURCE_BYTES].decode("utf-8", "replace")
            if len(raw) > MAX_SOURCE_BYTES:
                source += f"\n... (cut after {MAX_SOURCE_BYTES} bytes)"
        except OSError as error:
            source = f"(cannot read {case}: {error.strerror or error})"
        try:
            description = load_case(path).description
        except (CorpusError, OSError):
            description = ""
        cases[case] = {"source": source, "description": description,
                       "ebpf": _truncate(ebpf_listing(str(path), MAX_LISTING_LINES))}
    return cases


def _cell_payload(data: ReportData, root: Path, with_native: bool) -> dict[str, dict[str, Any]]:
    from harness.running.explain import native_listing

    cells = {}
    for (case, target), item in data.cells.items():
        entry = {key: item.get(key) for key in ("status", "expected", "actual", "detail", "first_difference",
                                                "code_size", "bpf_executed", "native_executed", "timings")}
        if target != INTERP and with_native and item.get("code_size") is not None:
            path = Path(case) if Path(case).is_absolute() else root / case
            entry["native"] = _truncate(native_listing(str(path), target, MAX_LISTING_LINES))
        cells[f"{case}|{target}"] = entry
    return cells


__all__ = ["report_html", "case_group"]
