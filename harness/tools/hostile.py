"""Hostile inputs for the harness itself: mutated corpus files and hostile programs.

The harness must survive anything a case file or a program does: every (case,
target) gets exactly one result, bad input is a one-line error naming the file,
and nothing ends the run. Two seeded generators (the same seed writes the same
files) feed that check, in the tests and by hand:

- :func:`mutate_corpus` copies corpus files with a few mutations each (deleted,
  duplicated or swapped lines, numbers replaced by edge values, stray sections
  and directives, flipped bytes, truncation); every ``CONTROL_EVERY``-th file is an
  unchanged copy named ``good_*``, which must still pass on every target.
- :func:`hostile_programs` writes programs aimed at the harness rather than at a
  JIT: random slots, endless loops, call chains, wild pointers into helpers,
  out-of-range jumps, broken ``lddw`` pairs, divisions by zero.

    python -m harness.tools.hostile mutate --count 10000 --seed 1 --out /tmp/mutants
    python -m harness run /tmp/mutants -n 2 --json /tmp/mutants.json   # one result per item
"""
from __future__ import annotations

import argparse
import random
import re
import shutil
import struct
from pathlib import Path

from harness import isa
from harness.cases.config import config_for_case
from harness.cases.corpus import find_case_files

CONTROL_EVERY = 10  # every tenth mutated-corpus file is an unchanged copy (a control)
EDGE_NUMBERS = ["0", "-1", "1", "0x7fffffff", "0x80000000", "0xffffffff", "0x100000000", "-2147483649",
                "0x7fffffffffffffff", "0xffffffffffffffff", "0x10000000000000000", "1180591620717411303424",
                "1048576", "1048577", "65536", "32767", "-32768", "32768", "0x", "1_0", "08", "-0", "1e3",
                "99999999999999999999999999999999999999"]
STRAY_LINES = ["-- result", "-- result\n0x1", "-- error", "-- budget 0", "-- budget 1", "-- budget 5000",
               "-- raw", "-- mem", "-- mem\nzz", "-- mem\n00 11 2", "-- events nowhere.pcap",
               "-- events protocols.pcap", "-- elf nowhere.o", "-- elf crc32.o nosuchsection",
               "-- map m hash key=0 value=5000 entries=1", "-- map m array value=8 entries=65536",
               "-- map m array value=4096 entries=65536", "-- cbpf", "-- cbpf\n1\n6 0 0 4294967295",
               "-- asm", "-- description", "-- nosuchsection", "--", "-- result-be\n1 2 3",
               ".rept 1099511627776", ".rept 1048576", ".rept -1", ".rept 3", ".endr", "ja -1", "ja +32767",
               "ja -32768", "call 1180591620717411303424", "call -1", "call 4294967295", "lddw %r11, 1",
               "lddw %r0, map:7", "lddw %r0, map:m", "ldxdw %r0, [%r10+32767]", "stw [%r1-32768], 1",
               "call local +5000", "call local -1", "gotol -1", "exit", "exit\nexit", "mov %r10, 0",
               "lock fetch", "lock", "div %r0, 0", "mod32 %r0, 0", "be17 %r0", ".raw 0xffffffffffffffff",
               "\x00", "\ufeff", "ldabsw 4294967295", "ldindb %r99, 1", "x: x: exit", "%r0"]


def _mutate_line(lines: list[str], rng: random.Random) -> None:
    """One mutation of a file's lines, in place."""
    kind = rng.randrange(8)
    where = rng.randrange(len(lines) + 1)
    if kind == 0 and lines:
        del lines[min(where, len(lines) - 1)]
    elif kind == 1 and lines:
        index = min(where, len(lines) - 1)
        lines.insert(index, lines[index])
    elif kind == 2 and len(lines) > 1:
        a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[a], lines[b] = lines[b], lines[a]
    elif kind in (3, 4):
        numbered = [i for i, line in enumerate(lines) if re.search(r"(?<![%\w])-?(0x)?[0-9a-fA-F]+\b", line)]
        if numbered:
            index = rng.choice(numbered)
            matches = list(re.finditer(r"(?<![%\w])[-+]?(0x[0-9a-fA-F]+|\d+)\b", lines[index]))
            if matches:
                match = rng.choice(matches)
                line = lines[index]
                lines[index] = line[:match.start()] + rng.choice(EDGE_NUMBERS) + line[match.end():]
    elif kind == 5:
        lines.insert(where, rng.choice(STRAY_LINES))
    elif kind == 6 and lines:
        index = min(where, len(lines) - 1)
        lines[index] = re.sub(r"%r\d+", rng.choice(["%r11", "%r10", "%r99", "%r", "r1"]), lines[index], count=1)
    else:
        lines.insert(where, "-- " + rng.choice(["asm", "raw", "mem", "result", "error", "budget", "map", "events"]))


def mutate_text(text: str, rng: random.Random) -> bytes:
    """A corpus file's text after one to three mutations (possibly not UTF-8 any more)."""
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        _mutate_line(lines, rng)
    data = bytearray(("\n".join(lines) + "\n").encode("utf-8"))
    roll = rng.random()
    if roll < 0.05 and data:  # a flipped byte: maybe invalid UTF-8, maybe a new character
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif roll < 0.10 and data:  # cut short
        del data[rng.randrange(len(data)):]
    return bytes(data)


def mutate_corpus(sources: list[Path], count: int, seed: int, out: Path) -> list[Path]:
    """Write ``count`` mutated copies of ``sources`` (files or folders) into ``out``.

    Files that cases refer to (pcap captures, ELF objects) are copied alongside, so a
    mutant differs from its original only by its mutations. Returns the files written.
    """
    rng = random.Random(seed)
    # A case whose folder's harness.toml sets how it runs would lose that in a flat copy.
    originals = [path for path in find_case_files(sources)
                 if path.is_file() and config_for_case(path).path is None]
    if not originals:
        raise ValueError("no .data files to mutate")
    out.mkdir(parents=True, exist_ok=True)
    for folder in {path.parent for path in originals}:
        for extra in folder.iterdir():
            if extra.suffix in (".pcap", ".o", ".txt") and not (out / extra.name).exists():
                shutil.copyfile(extra, out / extra.name)
    texts = [(path, path.read_text(encoding="utf-8")) for path in originals]
    written = []
    for number in range(count):
        original, text = rng.choice(texts)
        if number % CONTROL_EVERY == 0:
            target, data = out / f"good_{number:05}_{original.name}", text.encode("utf-8")
        else:
            target, data = out / f"mut_{number:05}_{original.name}", mutate_text(text, rng)
        target.write_bytes(data)
        written.append(target)
    return written


# --- hostile programs --------------------------------------------------------

def _raw(insns: list[tuple[int, int, int, int, int]]) -> str:
    """``-- raw`` lines (one 64-bit word each) for (opcode, dst, src, off, imm) slots."""
    words = []
    for opcode, dst, src, off, imm in insns:
        data = struct.pack("<BBhi", opcode & 0xFF, ((src & 0xF) << 4) | (dst & 0xF),
                           (off + 0x8000) % 0x10000 - 0x8000, (imm + 0x80000000) % 0x100000000 - 0x80000000)
        words.append(f"0x{int.from_bytes(data, 'big'):016x}")
    return "\n".join(words)


def _random_slots(rng: random.Random, size: int) -> str:
    opcodes = sorted({opcode for opcode, _ in isa.OPCODES})
    slots = []
    for _ in range(size):
        opcode = rng.choice(opcodes) if rng.random() < 0.8 else rng.randrange(256)
        slots.append((opcode, rng.randrange(16) if rng.random() < 0.1 else rng.randrange(11),
                      rng.randrange(16) if rng.random() < 0.1 else rng.randrange(11),
                      rng.choice([0, 1, -1, 2, -2, size, -size, 0x7FFF, -0x8000, rng.randrange(-8, 8)]),
                      rng.choice([0, 1, -1, 0x7FFFFFFF, -0x80000000, 100, 101, 102, 103, 104, 1, 2, 3,
                                  rng.randrange(-64, 64)])))
    slots.append((isa.JMP | isa.EXIT, 0, 0, 0, 0))
    return "-- raw\n" + _raw(slots)


def _call_chain(depth: int, fan: int) -> str:
    lines = ["-- asm", "call local f0", "exit"]
    for level in range(depth):
        lines.append(f"f{level}:")
        lines += [f"call local f{min(level + 1 + branch, depth)}" for branch in range(fan)]
        lines.append("exit")
    lines += [f"f{depth}:", "mov %r0, 1", "exit"]
    return "\n".join(lines)


HOSTILE_TEMPLATES = [
    "-- asm\nloop:\nja loop\nexit\n-- result\n1\n-- budget\n{budget}",
    "-- asm\nloop:\nja loop\nexit\n-- error\nendless\n-- budget\n{budget}",
    "-- asm\nmov %r1, {wild}\nmov %r2, 64\ncall 101\nexit\n-- error",
    "-- asm\nlddw %r1, {wild64}\nmov %r2, {wild}\ncall 103\nexit\n-- error",
    "-- asm\nlddw %r1, {wild64}\nldxdw %r0, [%r1+{off}]\nexit\n-- error",
    "-- asm\nlddw %r1, {wild64}\nlock fetch add [%r1+{off}], %r0\nexit\n-- error",
    "-- asm\nmov %r0, {wild}\ndiv %r0, 0\nmod32 %r0, 0\nsdiv %r0, -1\nexit",
    "-- asm\nja +{off}\nexit",
    "-- asm\ngotol {wild}\nexit",
    "-- asm\ncall {helper}\nexit",
    "-- raw\n0x1800000000000000\n-- error",
    "-- asm\nmov %r0, 1\nexit\n" + "-- mem\n00\n" * 20 + "-- result\n1",
    "-- asm\nloop:\nja loop\nexit\n" + "-- mem\n00\n" * 20 + "-- error\n-- budget\n{budget}",
]


def hostile_programs(count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (name, case text) pairs of hostile programs, the same for the same seed."""
    rng = random.Random(seed)
    cases = []
    for number in range(count):
        roll = rng.random()
        if roll < 0.4:
            text = _random_slots(rng, rng.randint(1, 40))
        elif roll < 0.5:
            text = _call_chain(rng.choice([1, 7, 8, 9, 18]), rng.choice([1, 2]))
        else:
            template = rng.choice(HOSTILE_TEMPLATES)
            text = template.format(
                budget=rng.choice([1, 2, 1000, 50_000]),
                wild=rng.choice([0, 1, -1, 0x7FFFFFFF, -0x80000000, 0x10000000, 0x20010000 - 1]),
                wild64=rng.choice([0, 0x10000000, 0x1000FFF9, 0x2000FFFF, 0x3FFFFFFF, 0x8000000000000000,
                                   0xFFFFFFFFFFFFFFFF, 0x00C00000, 0x00100000]),
                off=rng.choice([0, 1, -1, 0x7FFF, -0x8000, 7]),
                helper=rng.choice([0, 1, 2, 3, 4, 5, 63, 64, 99, 105, -1, 0x7FFFFFFF]))
        cases.append((f"hostile_{number:05}.data", text + "\n"))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.tools.hostile",
                                     description="Write hostile inputs for the harness itself.")
    parser.add_argument("kind", choices=("mutate", "programs"),
                        help="mutate: mutated corpus files; programs: hostile programs")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path, help="folder to write into")
    parser.add_argument("paths", nargs="*", default=["corpus"], help="corpus files or folders to mutate")
    args = parser.parse_args(argv)
    if args.kind == "mutate":
        written = mutate_corpus([Path(path) for path in args.paths], args.count, args.seed, args.out)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in hostile_programs(args.count, args.seed):
            (args.out / name).write_text(text)
            written.append(args.out / name)
    print(f"wrote {len(written)} files into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
