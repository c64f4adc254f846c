"""pytest's ``--junitxml`` file, one test case per (case, target).

pytest writes one test case per item, and a corpus item runs one case on several
targets (see :mod:`harness.running.caseitems`). Once pytest has written the file, the
plugin replaces each corpus item's test case by one per target, named as the
per-target item ``case.data::target`` is (classname: the case file's dotted path;
name: the target), each with that target's verdict: nothing for a pass, ``failure``
for a fail or a stale known failure, ``error`` for a result the harness could not
judge (a crashed worker included), ``skipped`` for a skip, an unsupported instruction
or a known failure (as pytest marks an xfail). A failure's text is that target's part
of the item's explanation. Pairs that never reported (their worker was lost for good)
get an ``error`` test case too, and the suite's counts are recounted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from harness.running.conformance import ERROR, FAIL, KNOWN, SKIP, STALE, UNSUPPORTED

PATH_SEPARATOR = "/"  # pytest's node ids separate folders with "/" on every system


def testcase_names(nodeid: str, prefix: str | None = None) -> tuple[str, str]:
    """(classname, name) of the test case pytest's JUnit writer makes for ``nodeid``.

    As documented for ``--junitxml``: the path part dotted (``.py`` dropped), the last
    ``::`` part the name, the parts between it and the path the classname, ``--junitprefix``
    in front.
    """
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = names[0].replace(PATH_SEPARATOR, ".").removesuffix(".py")
    names[-1] += bracket + params
    classnames = ([prefix] if prefix else []) + names[:-1]
    return ".".join(classnames), names[-1]


@dataclass
class CorpusItem:
    """A corpus item as it ran: its node id, its case file's node id and its targets' results."""

    nodeid: str
    file_nodeid: str
    results: list[dict[str, Any]]


def _one_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _sections(text: str, results: list[dict[str, Any]]) -> dict[str, str]:
    """Each target's part of a merged explanation (each part starts ``CASE on TARGET: ``)."""
    lines = text.splitlines()
    starts: list[tuple[int, str]] = []
    for result in results:
        header = f"{result['case']} on {result['target']}: "
        found = next((index for index, line in enumerate(lines)
                      if line.startswith(header) and all(index > start for start, _ in starts)), None)
        if found is not None:
            starts.append((found, result["target"]))
    bounds = [start for start, _ in starts[1:]] + [len(lines)]
    return {target: "\n".join(lines[start:end]).strip() for (start, target), end in zip(starts, bounds)}


def _body(result: dict[str, Any]) -> str:
    return (f"{result['case']} on {result['target']}: {result['status'].upper()}\n"
            f"  expected: {result.get('expected', '')}\n  actual:   {result.get('actual', '')}\n"
            f"  {result.get('detail', '')}")


def _testcase(classname: str, result: dict[str, Any], explanation: str | None) -> ElementTree.Element:
    from harness.running.explain import failure_headline

    seconds = sum((result.get("timings") or {}).values())
    case = ElementTree.Element("testcase", classname=classname, name=result["target"], time=f"{seconds:.3f}")
    status = result["status"]
    if status in (FAIL, STALE, ERROR):
        tag = "error" if status == ERROR else "failure"
        ElementTree.SubElement(case, tag, message=failure_headline([result])).text = explanation or _body(result)
    elif status == KNOWN:
        ElementTree.SubElement(case, "skipped", type="pytest.xfail", message=_one_line(result.get("detail", "")))
    elif status in (SKIP, UNSUPPORTED):
        reason = _one_line(result.get("detail", "")) or status
        ElementTree.SubElement(case, "skipped", type="pytest.skip",
                               message=f"unsupported: {reason}" if status == UNSUPPORTED else reason)
    return case


def split_corpus_testcases(path: str, items: list[CorpusItem], unreported: list[CorpusItem],
                           prefix: str | None = None) -> None:
    """Rewrite pytest's JUnit file at ``path``: each corpus item's test case becomes one per target.

    ``unreported`` holds the pairs that never reported (one result each): added as test cases.
    """
    tree = ElementTree.parse(path)
    suite = tree.getroot() if tree.getroot().tag == "testsuite" else tree.getroot().find("testsuite")
    if suite is None:
        return
    written = {(case.get("classname", ""), case.get("name", "")): case for case in suite.findall("testcase")}
    for item in items:
        classname = testcase_names(f"{item.file_nodeid}::target", prefix)[0]
        old = written.pop(testcase_names(item.nodeid, prefix), None)
        failure = old.find("failure") if old is not None else None
        texts = _sections(failure.text or "", item.results) if failure is not None else {}
        new = [_testcase(classname, result, texts.get(result["target"])) for result in item.results]
        output = [child for child in old if child.tag in ("system-out", "system-err")] if old is not None else []
        if new and output:  # captured output belongs to the item: kept once, on its first target
            new[0].extend(output)
        if old is not None:
            position = list(suite).index(old)
            suite.remove(old)
            suite[position:position] = new
        else:
            suite.extend(new)
    for item in unreported:
        suite.extend(_testcase(testcase_names(f"{item.file_nodeid}::target", prefix)[0], result, None)
                     for result in item.results)
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for attribute, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        suite.set(attribute, str(sum(1 for case in cases if case.find(tag) is not None)))
    temporary = f"{path}.tmp{os.getpid()}"
    tree.write(temporary, encoding="utf-8", xml_declaration=True)
    os.replace(temporary, path)


__all__ = ["CorpusItem", "split_corpus_testcases", "testcase_names"]
