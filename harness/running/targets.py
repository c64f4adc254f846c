"""Which targets a run means: ``all``, ``default``, or a comma list, external JITs included.

``all`` is the interpreter and the built-in backends (arches.BACKENDS), as it always
was. ``default`` (what ``harness run`` and ``pytest`` use without ``--arch``) adds
every external-JIT target that is configured (its environment variables are set,
e.g. UBPF_SRC) and available (it builds, its command exists); a configured target
that is not available is left out with one line saying why. A target named
explicitly must be available, else the selection fails with that line.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.running.conformance import all_targets

ALL, DEFAULT = "all", "default"


class TargetError(ValueError):
    """A selection that cannot run; the message is one line saying why."""


@dataclass
class Selection:
    targets: list[str]
    notes: list[str] = field(default_factory=list)  # why configured external targets are left out


def known_targets() -> list[str]:
    """interp, the built-in targets, then every described external target."""
    import arches

    return all_targets() + arches.external_names()


def select(text: str) -> Selection:
    """The targets ``text`` means (raises TargetError naming what is unknown or unavailable,
    or the file and place of a bad external-target description or known-failure file)."""
    from arches import external

    try:
        return _select(text)
    except external.DescriptionError as error:
        raise TargetError(str(error)) from None


def _select(text: str) -> Selection:
    import arches
    from arches import external

    externals = arches.external_names()
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    known = all_targets() + externals
    unknown = [name for name in chosen if name not in known and name not in (ALL, DEFAULT)]
    if unknown or not chosen:
        raise TargetError(f"unknown target(s) {', '.join(unknown) or '(none)'}; known: {ALL}, {DEFAULT}, "
                          f"{', '.join(known)}")
    selection = Selection([])
    for name in chosen:
        if name == ALL:
            selection.targets += all_targets()
        elif name == DEFAULT:
            selection.targets += all_targets()
            for target in externals:
                if external.configured(target):
                    why = external.availability(target)
                    if why is None:
                        selection.targets.append(target)
                    else:
                        selection.notes.append(why)
        elif name in externals:
            why = external.availability(name)
            if why is not None:
                raise TargetError(why)
            selection.targets.append(name)
        else:
            selection.targets.append(name)
    selection.targets = list(dict.fromkeys(selection.targets))  # each once, in order
    return selection
