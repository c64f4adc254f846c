"""Authoring a case: the scaffold ``python -m harness new`` writes, every section explained."""
from __future__ import annotations

from pathlib import Path

SCAFFOLD = """\
-- description
# One or two lines: what this case checks and which JIT bug it would catch.
{description}
-- asm
# The program, one instruction per line (see README "Adding a corpus case").
# r1 = input memory (the -- mem bytes), r2 = its length, r10 = stack top; every other
# register is undefined until written, and r1-r5 are undefined again after a call.
mov %r0, 0
exit
# -- mem
# Input memory as hex bytes, e.g.: 00 01 02 03
-- result
# The expected r0 as a u64, reasoned by hand from RFC 9669 (never copied from a run).
# Until TODO is replaced by it, the case is an error on every target.
TODO
# -- result-be
# The expected r0 on big-endian targets (s390x, ppc64, sparc64, mips64), only where it differs
# (without it, -- result binds the big-endian targets too).
# -- result-bits
# 32 to compare only the low 32 bits of r0 with -- result (as the kernel's test_bpf does).
# -- error reject
# Use instead of -- result when the program must be rejected (reject), fault (fault) or
# run out of its instruction budget (limit); a bare -- error accepts any of the three.
# -- error pattern
# Like -- error, and the error message must match this regular expression.
"""


def new_case(path: str, description: str = "") -> Path:
    """Write a scaffold for a new case (an error until its expected value replaces TODO);
    refuses to overwrite an existing file."""
    target = Path(path)
    if target.suffix != ".data":
        target = target.with_suffix(".data")
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(SCAFFOLD.format(description=description or f"TODO: describe {target.stem}"))
    return target
