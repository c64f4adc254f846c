"""How corpus items are named and grouped: one pytest item per case, running its targets.

pytest-xdist's controller spends a fixed, serial cost on every item it schedules and
every report it receives (about 1 ms on this project's 2-core machine, measured with
``harness bench``), so one item per (case, target) made that cost grow with the number
of targets, and a case's targets landed on different workers, each parsing,
validating and interpreting it again. Selection still works per (case, target):

* collection yields one item per (case, target), named ``case.data::target``, so
  ``pytest corpus/x.data::arm64``, ``--arch``, ``-k``, ``-m``, ``--deselect`` and the
  cache provider's ``--lf``/``--ff`` all choose (case, target) pairs as before;
* once every plugin has selected and ordered them, the plugin merges each run of
  consecutive items of one case file (:func:`runs_of_one_case`) into one item that runs
  those targets, and reports a result for each of them.

A merged item's node id says which targets it runs (:func:`group_nodeid`), so the
controller, which never collects under xdist, knows them from the id alone
(:func:`parse_group`): ``case.data`` for every target of the session, ``case.data::arm64``
for one target (the same id as the per-target item: it can be copied to the command
line), ``case.data::x86_64,arm64`` for any other subset.
"""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

SEPARATOR = "::"
TARGET_SEPARATOR = ","  # never part of a target name (arches/ and external descriptions use [a-z0-9_-])


def group_nodeid(file_nodeid: str, targets: Sequence[str], session_targets: Sequence[str]) -> str:
    """The node id of the item that runs ``targets`` of the case whose file has ``file_nodeid``."""
    if len(targets) == 1:
        return f"{file_nodeid}{SEPARATOR}{targets[0]}"
    if list(targets) == list(session_targets):
        return file_nodeid
    return f"{file_nodeid}{SEPARATOR}{TARGET_SEPARATOR.join(targets)}"


def parse_group(nodeid: str, session_targets: Sequence[str]) -> tuple[str, list[str]] | None:
    """(the case file's node id, the targets) of a corpus item's node id; None for any other test."""
    file, separator, rest = nodeid.partition(SEPARATOR)
    if not file.endswith(".data"):
        return None
    if not separator:
        return file, list(session_targets)
    if SEPARATOR in rest or not rest:
        return None
    return file, rest.split(TARGET_SEPARATOR)


Item = TypeVar("Item")


def runs_of_one_case(items: Sequence[Item], case_of: Callable[[Item], object | None]) -> list[list[Item]]:
    """Consecutive items of one case together, every other item alone, order kept.

    ``case_of`` gives an item's case (its file node) or None for an item of another kind.
    Only neighbours merge: an ordering plugin (``--ff`` puts failed pairs first) may split a
    case into two items, which is correct, merely slower.
    """
    runs: list[list[Item]] = []
    previous: object | None = None
    for item in items:
        case = case_of(item)
        if case is not None and case is previous:
            runs[-1].append(item)
        else:
            runs.append([item])
        previous = case
    return runs
