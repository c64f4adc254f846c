"""Views of cases for people: ``show`` one case on chosen targets, ``list`` the corpus."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness import isa
from harness.cases.corpus import CorpusError, find_case_files, load_case
from harness.running.conformance import ERROR, FAIL, INTERP, STALE, UNSUPPORTED, load_checked, run_item
from harness.running.coverage import form_name, program_forms
from harness.running.explain import code_view, ebpf_listing

SHOW_LINES = 5000  # per listing: enough for any hand-written case, bounded for generated giants


FAILING = (FAIL, ERROR, STALE, UNSUPPORTED)  # what makes ``show`` exit 1, as it fails ``run``


@dataclass
class Shown:
    """What ``show`` prints, or why it cannot (an unreadable case), and the targets it fails on."""

    text: str = ""
    error: str = ""
    failing: list[str] = field(default_factory=list)


def show(path: str, targets: list[str], native: bool = True) -> Shown:
    """A case's description, eBPF listing, and its outcome (and native code) on each target."""
    try:
        case = load_case(path)
    except CorpusError as error:
        return Shown(error=str(error))
    failing = []
    lines = [f"{path}"]
    if case.description:
        lines += ["", case.description.strip()]
    lines += ["", "eBPF:"] + ["  " + line for line in ebpf_listing(path, SHOW_LINES)]
    if case.memory:
        lines += ["", f"input memory: {len(case.memory)} bytes"]
    lines += ["", "outcome per target:"]
    width = max([8] + [len(target) for target in targets])
    translated = set()
    for target in targets:
        result = run_item(path, target)
        if result.code_size is not None:
            translated.add(target)
        if result.status in FAILING:
            failing.append(target)
        summary = result.actual or (result.detail.splitlines()[0] if result.detail else "")
        lines.append(f"  {target:<{width}} {result.status.upper():<11} {summary}")
        if result.status not in ("pass", "skip") and result.detail:
            lines += [f"  {'':<{width}} {line}" for line in result.detail.splitlines()[:2]]
    if native:
        for target in targets:
            if target == INTERP:
                continue
            listing = (code_view(path, target, SHOW_LINES).lines if target in translated
                       else ["(none: the case did not reach translation on this target)"])
            lines += ["", f"{target} native code:"] + ["  " + line for line in listing]
    return Shown("\n".join(lines), failing=failing)


def corpus_listing(paths: list[str], targets: list[str], verbose: bool = False) -> str:
    """Cases per folder, the targets, and per target which instruction forms the corpus runs."""
    import arches
    from arches.base import UnsupportedInstruction

    files = [str(p) for p in find_case_files(paths)]
    by_folder: dict[str, list[str]] = defaultdict(list)
    forms_by_case: dict[str, set[tuple[int, int]]] = {}
    broken = []
    for name in files:
        by_folder[str(Path(name).parent)].append(name)
        loaded = load_checked(name)
        if loaded.case is None:
            broken.append(loaded.error)
            continue
        forms_by_case[name] = program_forms(loaded.case.program)
    lines = [f"{len(files)} case files"]
    for folder, names in sorted(by_folder.items()):
        lines.append(f"  {folder:<40} {len(names):>5}")
        if verbose:
            lines += [f"      {Path(name).name}" for name in sorted(names)]
    for message in broken:
        lines.append(f"  unreadable: {message}")
    lines += ["", "targets:"]
    width = max([8] + [len(target) for target in targets])
    for target in targets:
        if target == INTERP:
            lines.append(f"  {INTERP:<{width}} reference interpreter (either byte order)")
            continue
        backend = arches.get(target)
        what = f"{backend.description.summary} via {' '.join(backend.command)}" \
            if target in arches.external_names() else f"backend version {backend.version}"
        lines.append(f"  {target:<{width}} {backend.byte_order}-endian, {what}")
    lines += ["", "opcode coverage (instruction forms some case runs on the target):"]
    for target in targets:
        covered: set[tuple[int, int]] = set()
        for name, forms in forms_by_case.items():
            if target != INTERP:
                # the program as a run compiles it: validated, map loads resolved to their maps
                runnable = load_checked(name).runnable
                if runnable is None:
                    continue
                try:
                    arches.get(target).compile(runnable)
                except UnsupportedInstruction:
                    continue
                except Exception:  # a backend crash or a JIT's refusal: the case does not count for it
                    continue
            covered |= forms
        missing = sorted(set(isa.OPCODES) - covered)
        lines.append(f"  {target:<{width}} {len(covered)} of {len(isa.OPCODES)}"
                     + (f"; none runs: {', '.join(form_name(key) for key in missing)}" if missing else ""))
    return "\n".join(lines)
