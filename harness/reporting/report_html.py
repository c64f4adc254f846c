"""``report.html``: one self-contained page (inline CSS, JS and SVG; no network).

Laid out for a laptop screen: the matrix of cases against targets scrolls inside its
own box, with its header row and case column sticky, beside a details panel. The
matrix is static HTML, so it reads even without JavaScript; clicking a cell (or
opening ``report.html#cell=CASE|TARGET``) shows that cell's details: expected vs
actual, the detail text (wrapped), the eBPF program with each instruction's native
code under it, code size, instructions executed and times.

Per-cell data is stored per case as gzip-compressed JSON (base64) and unpacked only
when one of the case's cells is opened (the browser's ``DecompressionStream``). The
native code is embedded for the cells that do not pass, where it is read; a passing
cell's panel names the command that prints it (``show``). Measured on the full corpus
on 13 targets: listings for every cell came to 49 MB (9.7 MB compressed), too much
for a page; without the passing cells' code the page is about 1.3 MB.
"""
from __future__ import annotations

import base64
import gzip
import html
import json
from pathlib import Path
from typing import Any

from harness.running.conformance import INTERP, PASS
from harness.reporting.model import (BAD_STATUSES, ISA_GROUPS, ISA_VERSIONS, Conformance, ReportData, case_group,
                                     chart_rows, shown_statuses)

MAX_LISTING_LINES = 400  # of one listing kept in the page
# known: a recorded known failure of an external JIT (fails, does not fail the run);
# stale: a recorded known failure that passes now (fails the run until its record goes).
MAX_SOURCE_BYTES = 64 << 10  # of a case file shown in the report (the largest corpus case is 6.3 KiB)
STATUS_COLOURS = {"pass": "#2e9d4f", "fail": "#d93f3f", "error": "#8e2bb0", "skip": "#9aa4ad",
                  "unsupported": "#e49b1f", "known": "#c48a8a", "stale": "#1f6fb4"}
# what a matrix cell says (its colour and title say the rest): narrow, so every target column fits
STATUS_SHORT = {"pass": "ok", "fail": "FAIL", "error": "err", "skip": "skip", "unsupported": "uns",
                "known": "kn", "stale": "stale"}
TARGET_COLOURS = ["#3d6fd9", "#d9763d", "#2e9d8f", "#b03d8e", "#7a8a2e", "#6b4fd9", "#444"]

CSS = "".join(f"td.cell.{status}{{background:{colour}}}" for status, colour in STATUS_COLOURS.items()) + """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2329;background:#f6f7f9}
header{background:#1d2329;color:#fff;padding:12px 20px}
header h1{margin:0;font-size:20px} header p{margin:4px 0 0;color:#c8d0d8} header a{color:#9cc3ff}
header dl{display:flex;flex-wrap:wrap;gap:2px 18px;margin:6px 0 0;color:#c8d0d8;font-size:13px}
header dt{display:inline;color:#8e9aa6} header dd{display:inline;margin:0 0 0 4px;color:#fff}
header p.incomplete{background:#b3261e;color:#fff;font-weight:bold;padding:6px 10px;margin-top:8px}
main{display:flex;gap:14px;padding:14px 16px;align-items:flex-start}
#left{flex:1 1 auto;min-width:0}
#details{flex:0 0 clamp(360px,36vw,760px);position:sticky;top:8px;max-height:calc(100vh - 16px);overflow:auto;
background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:10px 14px}
@media (max-width:1000px){main{flex-direction:column;align-items:stretch}
#details{position:static;max-height:none;flex:none}}
section{background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:10px 14px;margin-bottom:14px;overflow-x:auto}
h2{font-size:16px;margin:4px 0 10px} h3{font-size:14px;margin:10px 0 4px} table{border-collapse:collapse}
th,td{padding:3px 8px;text-align:right;border-bottom:1px solid #eef0f2} th{background:#f0f2f5}
td.name,th.name{text-align:left;font-family:ui-monospace,monospace;font-size:12px}
.tables{display:flex;flex-wrap:wrap;gap:8px 28px;align-items:flex-start} .tables h2{font-size:15px}
#matrix-box{overflow:auto;max-height:calc(100vh - 120px);border:1px solid #e1e5e9}
table.matrix{border-collapse:separate;border-spacing:0}
table.matrix thead th{position:sticky;top:0;z-index:2;background:#f0f2f5;vertical-align:bottom;padding:4px 2px}
table.matrix th.target span{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;font-size:12px}
table.matrix td.name,table.matrix th.name{position:sticky;left:0;z-index:1;background:#fff;max-width:clamp(180px,16vw,420px);
overflow:hidden;text-overflow:ellipsis;white-space:nowrap;border-right:1px solid #d5dbe1}
table.matrix thead th.name{z-index:3;background:#f0f2f5}
table.matrix tr.group th{background:#e4e8ec;text-align:left} table.matrix tr.group td{background:#e4e8ec;text-align:left}
table.matrix td.cell{padding:3px 0;width:40px;min-width:40px;text-align:center;color:#fff;font-size:11px;
cursor:pointer}
table.matrix td.cell.selected{outline:3px solid #1d2329;outline-offset:-3px}
.yes{color:#2e9d4f;font-weight:600}.no{color:#d93f3f;font-weight:600}.none{color:#9aa4ad}
pre{background:#f6f7f9;border:1px solid #e1e5e9;padding:6px 8px;overflow:auto;font-size:12px;margin:4px 0}
pre.wrap{white-space:pre-wrap;overflow-wrap:anywhere}
#details pre.code{max-height:70vh}
#controls{margin-bottom:8px} .hidden{display:none}
.kv th{text-align:left;vertical-align:top;white-space:nowrap} .kv td{text-align:left;overflow-wrap:anywhere}
#changes-box{max-height:40vh;overflow:auto}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-1px}
"""

JS = """
const DATA = JSON.parse(document.getElementById('report-data').textContent);
const unpacked = {};
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
function pre(lines, cls){return '<pre class="'+(cls||'')+'">'+esc(Array.isArray(lines)?lines.join('\\n'):lines)+'</pre>';}
async function caseData(cs){
  if(!(cs in unpacked)){
    const packed = DATA.cases[cs];
    if(packed == null) return null;
    const bytes = Uint8Array.from(atob(packed), c=>c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    unpacked[cs] = JSON.parse(await new Response(stream).text());
  }
  return unpacked[cs];
}
async function show(key){
  const split = key.lastIndexOf('|'), cs = key.slice(0, split), target = key.slice(split + 1);
  const box = document.getElementById('details');
  let info = null;
  try { info = await caseData(cs); }
  catch(error) { box.innerHTML = '<p>Cannot unpack the data of '+esc(cs)+': '+esc(error)+
                 ' (this browser lacks DecompressionStream?)</p>'; return; }
  const cell = info && info.cells[target];
  if(!cell){box.innerHTML='<p>No result for '+esc(key)+'</p>';return;}
  document.querySelectorAll('td.cell.selected').forEach(td=>td.classList.remove('selected'));
  const row = document.querySelector('tr.case[data-case="'+CSS.escape(cs)+'"]');
  const column = DATA.targets.indexOf(target);
  if(row && column >= 0){row.cells[column + 1].classList.add('selected');}
  let h = '<h2>'+esc(cs)+' <small>on '+esc(target)+'</small></h2>';
  h += '<table class="kv"><tr><th>status</th><td><b style="color:'+DATA.colours[cell.status]+'">'+esc(cell.status)+'</b></td></tr>';
  h += '<tr><th>expected</th><td>'+esc(cell.expected||'')+'</td></tr><tr><th>actual</th><td>'+esc(cell.actual||'')+'</td></tr>';
  if(cell.first_difference){const d=cell.first_difference;
    h += '<tr><th>first difference</th><td>'+esc(d.what)+(d.offset!=null?' at 0x'+d.offset.toString(16):'')+
         ': expected ['+esc(d.expected)+'] actual ['+esc(d.actual)+']</td></tr>';}
  h += '<tr><th>native code</th><td>'+(cell.code_size!=null?cell.code_size+' bytes':'–')+'</td></tr>';
  h += '<tr><th>executed</th><td>'+(cell.bpf_executed!=null?cell.bpf_executed+' eBPF':'–')+
       (cell.native_executed!=null&&cell.native_executed>=0?', '+cell.native_executed+' native':'')+'</td></tr>';
  const t = cell.timings||{};
  h += '<tr><th>times</th><td>'+Object.keys(t).map(k=>esc(k)+' '+(t[k]*1e3).toFixed(3)+' ms').join(', ')+'</td></tr></table>';
  if(cell.detail) h += '<h3>Detail</h3>'+pre(cell.detail, 'wrap detail');
  if(info.description) h += '<h3>Description</h3>'+pre(info.description, 'wrap');
  if(target !== 'interp' && cell.code) h += '<div id="native-listing"><h3>'+esc(target)+' code</h3>'+pre(cell.code, 'code')+'</div>';
  else {
    if(target !== 'interp' && cell.code_size != null)
      h += '<p>The native code of passing cells is not embedded (it keeps the page small): <code>ebpf-jit-harness show '+
           esc(cs)+' --arch '+esc(target)+'</code> prints it under each eBPF instruction.</p>';
    h += '<h3>eBPF</h3>'+pre(info.ebpf, 'code');
  }
  h += '<h3>Source</h3>'+pre(info.source, 'wrap');
  box.innerHTML = h;
  box.scrollTop = 0;
}
function fromHash(){const m = decodeURIComponent(location.hash).match(/^#cell=(.*)$/); if(m) show(m[1]);}
window.addEventListener('hashchange', fromHash); fromHash();
document.querySelector('table.matrix').addEventListener('click', event=>{  // a cell opens its details
  const cell = event.target.closest('td.cell'), row = cell && cell.parentElement;
  if(!cell || !row.dataset.case || cell.classList.contains('none')) return;
  location.hash = '#cell=' + encodeURIComponent(row.dataset.case + '|' + DATA.targets[cell.cellIndex - 1])
    .replace(/%2F/g, '/').replace(/%7C/g, '|');
});
document.getElementById('filter').addEventListener('input', applyFilter);
document.getElementById('only-bad').addEventListener('change', applyFilter);
function applyFilter(){
  const text = document.getElementById('filter').value.toLowerCase();
  const bad = document.getElementById('only-bad').checked;
  document.querySelectorAll('table.matrix tbody').forEach(group=>{
    let shown = 0;
    group.querySelectorAll('tr.case').forEach(row=>{
      const hide = (text && !row.dataset.case.toLowerCase().includes(text)) || (bad && row.dataset.bad !== '1');
      row.classList.toggle('hidden', hide);
      shown += hide ? 0 : 1;
    });
    group.classList.toggle('hidden', shown === 0);  // no header left above an empty group
  });
}
"""


def report_html(data: ReportData, root: Path = Path("."), with_native: bool = True) -> str:
    """The whole page as one string."""
    payload = {"colours": STATUS_COLOURS, "targets": data.targets, "cases": _case_payload(data, root, with_native)}
    blob = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>eBPF JIT conformance report</title>", f"<style>{CSS}</style></head><body>",
        _header(data), "<main><div id='left'>", _overview_section(data),
        _changes_section(data), _matrix_section(data), _chart_section(data),
        "</div><aside id='details'><h2>Details</h2><p>Click a cell of the matrix to see what the target "
        "produced against the interpreter, and the eBPF program with each instruction's native code under "
        "it.</p></aside></main>",
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
    jumps = " · ".join(f"<a href='#{anchor}'>{name}</a>" for anchor, name in
                       (("matrix-section", "matrix"), ("changes", "changes"), ("chart", "chart"))
                       if anchor != "changes" or data.changes is not None)
    return (f"<header><h1>eBPF JIT conformance</h1><p>{' · '.join(facts)} · {jumps}</p>{_run_facts(data)}"
            f"{banner}</header>")


def _run_facts(data: ReportData) -> str:
    """The run's commit, date, versions and targets (from the results file's ``run`` record)."""
    run = data.run
    if not run:
        return "<dl id='run'><dt>run</dt><dd>(the results file records no run details)</dd></dl>"
    versions = run.get("versions") or {}
    facts = [("date", run.get("date") or "?"), ("commit", run.get("commit") or "(not a git checkout)")]
    facts += [(name, version) for name, version in versions.items()]
    facts.append(("targets", ", ".join(run.get("targets") or data.targets)))
    facts += [(name, command) for name, command in (run.get("external") or {}).items()]
    return "<dl id='run'>" + "".join(f"<div><dt>{html.escape(str(key))}</dt><dd>{html.escape(str(value))}</dd></div>"
                                     for key, value in facts) + "</dl>"


def _summary_table(data: ReportData) -> str:
    statuses = shown_statuses(data.summary)
    rows = ["<tr><th class='name'>target</th>" + "".join(f"<th>{s}</th>" for s in statuses) + "</tr>"]
    for target in data.targets:
        counts = data.summary[target]
        rows.append(f"<tr><td class='name'>{html.escape(target)}</td>" + "".join(
            f"<td style='color:{STATUS_COLOURS[s] if counts.get(s) and s != 'pass' else 'inherit'}'>"
            f"{counts.get(s, 0)}</td>" for s in statuses) + "</tr>")
    return f"<table>{''.join(rows)}</table>"


def _conformance_cell(entry: Conformance) -> str:
    if entry.cases == 0:
        return "<td class='none' title='no case uses it'>–</td>"
    if entry.passes:
        return f"<td class='yes' title='{entry.cases} cells'>✔</td>"
    title = html.escape(", ".join(entry.failing[:10]), quote=True)
    return f"<td class='no' title='{title}'>✘ {len(entry.failing)}</td>"


def _conformance_table(data: ReportData, keys: list[str], entries: Any) -> str:
    head = "<tr><th class='name'>target</th>" + "".join(f"<th>{html.escape(key)}</th>" for key in keys) + "</tr>"
    rows = [head] + [f"<tr><td class='name'>{html.escape(target)}</td>"
                     + "".join(_conformance_cell(entry) for entry in entries(target)) + "</tr>"
                     for target in data.targets]
    return f"<table>{''.join(rows)}</table>"


def _overview_section(data: ReportData) -> str:
    """The counts per target and the corpus's pass/fail per ISA version and group, side by side
    where the width allows (each table keeps every column: none is cut off)."""
    groups = _conformance_table(data, list(ISA_GROUPS),
                                lambda target: [data.groups[target][group] for group in ISA_GROUPS])
    versions = _conformance_table(data, [f"v{v}" for v in ISA_VERSIONS],
                                  lambda target: [data.versions[target][v] for v in ISA_VERSIONS])
    return ("<section id='overview'><div class='tables'>"
            f"<div id='summary'><h2>Summary per target</h2>{_summary_table(data)}</div>"
            f"<div id='versions'><h2>Corpus pass/fail per ISA version</h2>{versions}</div>"
            f"<div id='conformance'><h2>Corpus pass/fail per ISA group (RFC 9669)</h2>{groups}</div></div>"
            "<p>The two right-hand tables say what this corpus found, per target, for each ISA version "
            "and conformance group: ✔ every corpus case that uses an instruction of it passes; ✘ N: N "
            "cells fail (hover for the cases); – no case uses it. A corpus verdict, only as good as the "
            "corpus's coverage.</p></section>")


def _cell_link(case: str, target: str, text: str) -> str:
    key = html.escape(f"{case}|{target}", quote=True)
    return f"<a href='#cell={key}'>{html.escape(text)}</a>"


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
        # a removed cell has no result in this run to show
        case = (html.escape(change.case) if change.kind == "removed"
                else _cell_link(change.case, change.target, change.case))
        rows.append(f"<tr><td class='name' style='color:{colour}'>{change.kind}</td>"
                    f"<td class='name'>{case}</td><td class='name'>{html.escape(change.target)}</td>"
                    f"<td class='name'>{change.old}</td><td class='name'>{change.new}</td></tr>")
    return (f"<section id='changes'><h2>Changes against the baseline ({len(data.changes)})</h2>"
            f"<div id='changes-box'><table>{''.join(rows)}</table></div></section>")


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
    head = ("<thead><tr><th class='name'>case</th>"
            + "".join(f"<th class='target' title='{html.escape(t, quote=True)}'><span>{html.escape(t)}</span></th>"
                      for t in data.targets) + "</tr></thead>")
    bodies = [head]
    for group, cases in data.cases_by_group().items():
        bad = sum(1 for c in cases for t in data.targets
                  if data.cells.get((c, t), {}).get("status") in BAD_STATUSES)
        rows = [f"<tr class='group'><th class='name' title='{html.escape(group, quote=True)}'>{html.escape(group)}"
                f"</th><td colspan='{len(data.targets)}'>{len(cases)} cases"
                f"{', ' + str(bad) + ' failing cells' if bad else ''}</td></tr>"]
        for case in cases:
            cells, row_bad = [], False
            for target in data.targets:
                item = data.cells.get((case, target))
                if item is None:
                    cells.append("<td class='cell none' title='no result'></td>")
                    continue
                status = item["status"]
                row_bad |= status in BAD_STATUSES
                cells.append(f"<td class='cell {status}'>{STATUS_SHORT.get(status, status)}</td>")
            rows.append(f"<tr class='case' data-case='{html.escape(case, quote=True)}' data-bad='{int(row_bad)}'>"
                        f"<td class='name' title='{html.escape(case, quote=True)}'>{html.escape(Path(case).name)}</td>"
                        f"{''.join(cells)}</tr>")
        bodies.append(f"<tbody data-group='{html.escape(group, quote=True)}'>{''.join(rows)}</tbody>")
    legend = ", ".join(f"{short} {status}" for status, short in STATUS_SHORT.items())
    return ("<section id='matrix-section'><h2>Cases × targets</h2>"
            "<div id='controls'><input id='filter' placeholder='filter cases' size='30'> "
            "<label><input type='checkbox' id='only-bad'> only rows with failures</label> "
            f"<small>({html.escape(legend)})</small></div>"
            f"<div id='matrix-box'><table class='matrix'>{''.join(bodies)}</table></div></section>")


def _truncate(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LISTING_LINES:
        return lines
    return lines[:MAX_LISTING_LINES] + [f"... {len(lines) - MAX_LISTING_LINES} more lines"]


CELL_FIELDS = ("status", "expected", "actual", "detail", "first_difference", "code_size", "bpf_executed",
               "native_executed", "timings")


def _case_payload(data: ReportData, root: Path, with_native: bool) -> dict[str, str]:
    """Per case, everything its cells show, as gzip-compressed JSON in base64 (unpacked on a click).

    One blob per case: its cells share the eBPF text, which compresses away."""
    from harness.cases.corpus import CorpusError, load_case
    from harness.running.explain import code_view, ebpf_listing

    targets_of: dict[str, list[str]] = {}
    for case, target in data.cells:
        targets_of.setdefault(case, []).append(target)
    packed = {}
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
        cells = {}
        for target in targets_of.get(case, []):
            item = data.cells[(case, target)]
            entry = {key: item.get(key) for key in CELL_FIELDS}
            if target != INTERP and with_native and item.get("code_size") is not None and item["status"] != PASS:
                entry["code"] = _truncate(code_view(str(path), target).lines)
            cells[target] = entry
        document = {"source": source, "description": description,
                    "ebpf": _truncate(ebpf_listing(str(path), MAX_LISTING_LINES)), "cells": cells}
        text = json.dumps(document, separators=(",", ":")).encode()
        packed[case] = base64.b64encode(gzip.compress(text, compresslevel=9, mtime=0)).decode("ascii")
    return packed


__all__ = ["report_html", "case_group"]
