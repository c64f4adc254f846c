"""What this harness is and what it runs on: versions and the checkout's commit.

Shown by ``--version``, in pytest's header, and recorded in every results file (and so
in every report), so a result can be traced to the code and the emulator that made it.
"""
from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "ebpf-jit-harness"  # the name in pyproject.toml
# The engines the results depend on: (distribution name, how the report names it)
ENGINES = (("unicorn", "Unicorn"), ("keystone-engine", "keystone"), ("capstone", "capstone"))


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """The harness's version and those of Unicorn, keystone and capstone, by display name."""
    return {"harness": _version(DISTRIBUTION), **{shown: _version(name) for name, shown in ENGINES}}


def version_line() -> str:
    """``ebpf-jit-harness 0.1.0 (Unicorn 2.1.4, keystone 0.9.2, capstone 5.0.6)``."""
    found = versions()
    engines = ", ".join(f"{shown} {found[shown]}" for _, shown in ENGINES)
    return f"{DISTRIBUTION} {found['harness']} ({engines})"


def commit() -> str:
    """The git commit of the harness's own source (``abc1234``, ``-dirty`` with local
    changes), or "" when it is not a git checkout (an installed wheel) or git is missing."""
    source = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return ""
        # only this checkout's files: an installed copy lives inside some other repository at most
        top = subprocess.run(["git", "-C", str(source), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        if not top or Path(top).resolve() != source:
            return ""
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head.stdout.strip() + ("-dirty" if dirty else "")
