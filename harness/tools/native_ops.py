"""Mutation operators on the native code a backend emits for one eBPF instruction.

A chunk (what a builder returns for one instruction, see ``arches/driver.py``) is
seen as a list of :class:`NativeInsn`: a mnemonic and its operand tokens, read from
a line of assembly text (keystone backends) or from an instruction record's fields
(the direct encoders, s390x and riscv64), plus the labels between them. A
:class:`Site` names one mutation of one instruction of the chunk, by the
instruction's mnemonic and its occurrence among the chunk's instructions with that
mnemonic, so the same site applies to every chunk a builder emits for one form,
whatever registers and immediates the instance has.

Operators (``Site.operator``):

* ``drop``: the instruction is not emitted;
* ``swap``: it is emitted after the next instruction instead of before it;
* ``condition``: a mistaken condition (inverse, signed/unsigned, strict/non-strict,
  a carry chain without the carry);
* ``immediate``: an immediate or displacement +1, -1 or negated;
* ``register``: one register operand replaced by another of the same class;
* ``width``: the operation or access one size narrower or wider (32/64-bit forms,
  load/store sizes, %icc/%xcc);
* ``extension``: a zero- or sign-extension dropped (one instruction or a shift pair).

:func:`sites` lists every site of a chunk; :func:`apply` rewrites a chunk.
Applying never checks that the result assembles: a mutant the assembler or encoder
refuses is *stillborn*, which the caller finds out.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from arches.direct import Label
from harness.tools.dialects import NUMBER, Dialect, dialect

OPERATORS = ("drop", "swap", "condition", "immediate", "register", "width", "extension")
_TOKEN = re.compile(r"(?P<ident>\$\d+|[%$]?[A-Za-z_][\w.]*)|(?P<sign>[+-]\s*)?(?P<num>#?-?(?:0x[0-9a-fA-F]+|\d+))")


@dataclass(frozen=True)
class Site:
    """One mutation: ``operator`` on the ``occurrence``-th ``mnemonic`` of a chunk.

    ``detail`` says which operand and what it becomes (operator-specific).
    """

    operator: str
    mnemonic: str
    occurrence: int
    detail: tuple = ()

    def describe(self) -> str:
        where = f"{self.mnemonic}#{self.occurrence}"
        if self.operator in ("drop", "swap", "extension"):
            return f"{self.operator} {where}"
        return f"{self.operator} {where}: {' '.join(str(part) for part in self.detail)}"


# --- one native instruction, text or record -----------------------------------------------------

@dataclass
class Token:
    kind: str  # "reg", "imm" or "other"
    text: str
    start: int
    end: int
    value: int = 0
    signed_op: bool = False  # the number follows a binary + or - (x86 displacements)
    hexadecimal: bool = False
    hash_prefix: bool = False


class TextInsn:
    """One line of assembly: mnemonic, operand text, and its classified tokens."""

    def __init__(self, line: str, table: Dialect) -> None:
        self.line = line
        stripped = line.strip()
        self.mnemonic, _, self.rest = stripped.partition(" ")
        self.rest = self.rest.strip()
        self.table = table
        self.tokens = self._tokens() if not self.mnemonic.startswith(".") else []

    def _tokens(self) -> list[Token]:
        tokens: list[Token] = []
        operands = _operand_spans(self.rest)
        for match in _TOKEN.finditer(self.rest):
            if match.group("ident"):
                text = match.group("ident")
                kind = "reg" if text in self.table.register_class and not self.table.numeric_registers else "other"
                tokens.append(Token(kind, text, match.start(), match.end()))
                continue
            number = match.group("num")
            parsed = NUMBER.match(number)
            assert parsed is not None
            value = int(parsed.group(3), 0) * (-1 if parsed.group(2) else 1)
            sign = match.group("sign")
            if sign:
                value = -value if sign.strip() == "-" else value
            start = match.start() if sign else match.start("num")
            kind = "imm"
            if self.table.numeric_registers and self._numeric_is_register(match.start("num"), operands):
                kind = "reg"
            tokens.append(Token(kind, number if not sign else self.rest[start:match.end()], start, match.end(),
                                value, bool(sign), "0x" in number.lower(), number.startswith("#")))
        return tokens

    def _numeric_is_register(self, position: int, operands: list[tuple[int, int]]) -> bool:
        """ppc64: a bare number is a register inside ``d(r)`` parentheses or in a register position."""
        if "(" in self.rest[:position] and ")" in self.rest[position:] and \
                self.rest[:position].rfind("(") > self.rest[:position].rfind(")"):
            return True
        index = next((i for i, (start, end) in enumerate(operands) if start <= position < end), None)
        if index is None:
            return False
        operand = self.rest[operands[index][0]:operands[index][1]]
        if "(" in operand:  # the displacement of d(r)
            return False
        return index < len(operands) - self.table.immediate_tail.get(self.mnemonic, 0)

    def render(self, replacements: dict[int, str], mnemonic: str | None = None) -> str:
        """The line with token ``i`` replaced by ``replacements[i]`` (and a new mnemonic)."""
        rest, shift = self.rest, 0
        for index in sorted(replacements):
            token = self.tokens[index]
            rest = rest[:token.start + shift] + replacements[index] + rest[token.end + shift:]
            shift += len(replacements[index]) - (token.end - token.start)
        return f"{mnemonic or self.mnemonic} {rest}".rstrip()


def _operand_spans(rest: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level comma-separated operand."""
    spans, depth, start = [], 0, 0
    for position, char in enumerate(rest):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0:
            spans.append((start, position))
            start = position + 1
    if rest.strip():
        spans.append((start, len(rest)))
    return spans


def render_number(token: Token, value: int) -> str:
    """``value`` written as ``token`` was (``#`` prefix, hex or decimal, a binary sign)."""
    magnitude = f"{abs(value):#x}" if token.hexadecimal else str(abs(value))
    if token.signed_op:
        return f"{'-' if value < 0 else '+'} {magnitude}"
    return f"{'#' if token.hash_prefix else ''}{'-' if value < 0 else ''}{magnitude}"


# --- the chunk as a list of instructions ----------------------------------------------------------

def flatten(chunk: list[Any]) -> list[Any]:
    """Text chunks: one item per line (a MIPS item may hold a branch and its delay slot)."""
    items: list[Any] = []
    for item in chunk:
        if isinstance(item, str):
            items.extend(line for line in item.split("\n") if line.strip())
        else:
            items.append(item)
    return items


def is_label(item: Any) -> bool:
    return isinstance(item, Label) or (isinstance(item, str) and item.rstrip().endswith(":"))


def mnemonic_of(item: Any) -> str:
    if isinstance(item, str):
        return item.strip().split(" ", 1)[0]
    return record_view(item).mnemonic


def _positions(items: list[Any]) -> list[tuple[int, str, int]]:
    """(item index, mnemonic, occurrence) of every instruction."""
    seen: dict[str, int] = {}
    result = []
    for index, item in enumerate(items):
        if is_label(item):
            continue
        name = mnemonic_of(item)
        result.append((index, name, seen.get(name, 0)))
        seen[name] = seen.get(name, 0) + 1
    return result


# --- records (s390x, riscv64) -------------------------------------------------------------------------

@dataclass
class RecordView:
    """An instruction record as mnemonic, register fields, immediate fields and a branch target."""

    kind: str  # "s390x", "rv", "rv-branch", "rv-jump"
    mnemonic: str
    values: dict[str, int]
    target: str | None
    registers: tuple[str, ...]
    immediates: tuple[str, ...]


_S390X_REGISTER_FIELDS = ("r1", "r2", "r3", "b2", "x2")
_S390X_MASKED = ("bcr", "brcl")  # r1 is a condition mask, not a register


def record_view(item: Any) -> RecordView:
    module = type(item).__module__
    name = type(item).__name__
    if module.endswith("s390x.encoding"):
        mnemonic = item.text.split(" ", 1)[0]
        values = dict(item.values)
        registers = tuple(f for f in _S390X_REGISTER_FIELDS if f in values
                          and not (f == "r1" and mnemonic in _S390X_MASKED)
                          and not (f in ("b2", "x2") and values[f] == 0))
        immediates = tuple(f for f in ("i2",) if f in values and item.target is None)
        if "dl2" in values:
            immediates += ("displacement",)
        return RecordView("s390x", mnemonic, values, item.target, registers, immediates)
    if name == "Branch":
        return RecordView("rv-branch", item.mnemonic, {"rs1": item.rs1, "rs2": item.rs2}, item.target,
                          ("rs1", "rs2"), ())
    if name == "Jump":
        return RecordView("rv-jump", "jal", {"rd": item.link}, item.target, (), ())
    values = dict(item.values)
    registers = tuple(f for f in ("rd", "rs1", "rs2") if f in values)
    return RecordView("rv", item.mnemonic, values, None, registers, ("imm",) if "imm" in values else ())


def build_record(view: RecordView) -> Any:
    """A new record from a (changed) view; encoders raise ValueError/KeyError when it cannot exist."""
    if view.kind == "s390x":
        from arches.s390x.encoding import Encoded as S390xEncoded

        return S390xEncoded(view.mnemonic, view.target, dict(view.values))
    from arches.riscv64 import encoding as rv

    if view.kind == "rv-branch":
        if view.mnemonic not in rv.INVERSE:
            raise KeyError(f"{view.mnemonic} is no branch")
        return rv.Branch(view.mnemonic, view.values["rs1"], view.values["rs2"], view.target or "")
    if view.kind == "rv-jump":
        return rv.Jump(view.values["rd"], view.target or "")
    return rv.Encoded(view.mnemonic, dict(view.values))


def _get_immediate(view: RecordView, name: str) -> int:
    if name == "displacement":
        return (view.values.get("dh2", 0) << 12) | view.values.get("dl2", 0)
    return view.values.get(name, 0)


def _set_immediate(view: RecordView, name: str, value: int) -> None:
    if name == "displacement":
        view.values["dl2"], view.values["dh2"] = value & 0xFFF, value >> 12
    else:
        view.values[name] = value


# --- sites ---------------------------------------------------------------------------------------------

def sites(chunk: list[Any], arch: str, rng: random.Random) -> list[Site]:
    """Every site of ``chunk`` (register replacements drawn from ``rng``)."""
    table = dialect(arch)
    items = flatten(chunk)
    found: list[Site] = []
    positions = _positions(items)
    for number, (index, name, occurrence) in enumerate(positions):
        item = items[index]
        extension = extension_length(items, index, arch)
        found.append(Site("extension" if extension else "drop", name, occurrence))
        following = positions[number + 1][0] if number + 1 < len(positions) else None
        if following == index + 1:
            found.append(Site("swap", name, occurrence))
        if isinstance(item, str):
            found += _text_sites(TextInsn(item, table), table, name, occurrence, rng)
        else:
            found += _record_sites(record_view(item), table, name, occurrence, rng)
    return list(dict.fromkeys(found))


def _text_sites(insn: TextInsn, table: Dialect, name: str, occurrence: int, rng: random.Random) -> list[Site]:
    found = [Site("condition", name, occurrence, ("mnemonic", other)) for other in table.conditions.get(name, [])]
    found += [Site("width", name, occurrence, ("mnemonic", other)) for other in table.sizes.get(name, [])]
    registers = [i for i, token in enumerate(insn.tokens) if token.kind == "reg"]
    for index, token in enumerate(insn.tokens):
        if token.kind == "imm":
            found += [Site("immediate", name, occurrence, (index, change))
                      for change in ("+1", "-1", "neg") if change != "neg" or token.value]
        elif token.kind == "reg":
            choices = [r for r in table.registers_of(table.register_class[token.text]) if r != token.text]
            if choices:
                found.append(Site("register", name, occurrence, (index, rng.choice(choices))))
    if registers and table.register_width:
        first = insn.tokens[registers[0]].text
        if first in table.register_width:
            found.append(Site("width", name, occurrence, ("registers", first)))
    for index, token in enumerate(insn.tokens):
        if token.kind == "other" and token.text in table.operand_words:
            found.append(Site("width", name, occurrence, ("word", index)))
            if registers and table.register_width:
                found.append(Site("width", name, occurrence, ("registers+word", index)))
    return found


def _record_sites(view: RecordView, table: Dialect, name: str, occurrence: int, rng: random.Random) -> list[Site]:
    found = [Site("condition", name, occurrence, ("mnemonic", other)) for other in table.conditions.get(name, [])]
    if view.kind == "s390x" and name in _S390X_MASKED:
        mask = view.values.get("r1", 0)
        for other in {mask ^ 15, {2: 10, 10: 2, 4: 12, 12: 4}.get(mask, mask)} - {mask, 0, 15}:
            found.append(Site("condition", name, occurrence, ("mask", other)))
    if view.kind == "rv-branch":
        found.append(Site("condition", name, occurrence, ("strictness",)))
    if view.kind in ("s390x", "rv"):
        found += [Site("width", name, occurrence, ("mnemonic", other)) for other in table.sizes.get(name, [])]
    for field_name in view.immediates:
        value = _get_immediate(view, field_name)
        found += [Site("immediate", name, occurrence, (field_name, change))
                  for change in ("+1", "-1", "neg") if change != "neg" or value]
    for field_name in view.registers:
        current = str(view.values[field_name])
        choices = [r for r in table.registers_of("gpr") if r != current]
        found.append(Site("register", name, occurrence, (field_name, rng.choice(choices))))
    return found


# --- applying a site --------------------------------------------------------------------------------

def apply(chunk: list[Any], site: Site, arch: str) -> list[Any]:
    """``chunk`` with ``site`` applied; unchanged when the chunk has no such instruction."""
    items = flatten(chunk)
    positions = _positions(items)
    match = next((number for number, (_, name, occurrence) in enumerate(positions)
                  if name == site.mnemonic and occurrence == site.occurrence), None)
    if match is None:
        return chunk
    index = positions[match][0]
    operator = site.operator
    if operator in ("drop", "extension"):
        length = max(1, extension_length(items, index, arch)) if operator == "extension" else 1
        return items[:index] + items[index + length:]
    if operator == "swap":
        if match + 1 >= len(positions) or positions[match + 1][0] != index + 1:
            return chunk
        return items[:index] + [items[index + 1], items[index]] + items[index + 2:]
    item = items[index]
    replaced = _mutate_text(item, site, arch) if isinstance(item, str) else _mutate_record(item, site)
    if replaced is None:
        return chunk
    return items[:index] + [replaced] + items[index + 1:]


def _change(value: int, change: str) -> int:
    return {"+1": value + 1, "-1": value - 1, "neg": -value}[change]


def _mutate_text(line: str, site: Site, arch: str) -> str | None:
    table = dialect(arch)
    insn = TextInsn(line, table)
    kind, *rest = site.detail
    if site.operator in ("condition", "width") and kind == "mnemonic":
        return insn.render({}, rest[0])
    if site.operator == "immediate":
        index, change = site.detail
        if index >= len(insn.tokens) or insn.tokens[index].kind != "imm":
            return None
        token = insn.tokens[index]
        return insn.render({index: render_number(token, _change(token.value, change))})
    if site.operator == "register":
        index, register = site.detail
        if index >= len(insn.tokens) or insn.tokens[index].kind != "reg":
            return None
        if table.register_class.get(insn.tokens[index].text) != table.register_class.get(register):
            return None
        return insn.render({index: register})
    if site.operator == "width":
        replacements: dict[int, str] = {}
        if kind in ("registers", "registers+word"):
            klass = table.register_class.get(next((t.text for t in insn.tokens if t.kind == "reg"), ""))
            for index, token in enumerate(insn.tokens):
                if token.kind == "reg" and table.register_class.get(token.text) == klass \
                        and token.text in table.register_width:
                    replacements[index] = table.register_width[token.text]
        if kind in ("word", "registers+word"):
            index = rest[0]
            if index >= len(insn.tokens) or insn.tokens[index].text not in table.operand_words:
                return None
            replacements[index] = table.operand_words[insn.tokens[index].text]
        return insn.render(replacements) if replacements else None
    return None


def _mutate_record(item: Any, site: Site) -> Any:
    view = record_view(item)
    kind, *rest = site.detail
    if site.operator in ("condition", "width") and kind == "mnemonic":
        view.mnemonic = rest[0]
        if view.kind == "s390x" and "i2" in view.values and view.target is None and rest[0] == "llilf":
            view.values["i2"] = view.values["i2"]  # same bits: lgfi sign-extends, llilf zero-extends
    elif site.operator == "condition" and kind == "mask":
        view.values["r1"] = rest[0]
    elif site.operator == "condition" and kind == "strictness":
        from arches.riscv64.encoding import INVERSE

        view.mnemonic = INVERSE[view.mnemonic]
        view.values["rs1"], view.values["rs2"] = view.values["rs2"], view.values["rs1"]
    elif site.operator == "immediate":
        if kind not in view.immediates:
            return None
        _set_immediate(view, kind, _change(_get_immediate(view, kind), rest[0]))
    elif site.operator == "register":
        if kind not in view.registers:
            return None
        view.values[kind] = int(rest[0])
    else:
        return None
    return build_record(view)


# --- extensions ------------------------------------------------------------------------------------

def _register_names(item: Any, arch: str) -> list[str]:
    if isinstance(item, str):
        insn = TextInsn(item, dialect(arch))
        return [_base(token.text, arch) for token in insn.tokens if token.kind == "reg"]
    view = record_view(item)
    return [str(view.values[name]) for name in view.registers]


def _base(register: str, arch: str) -> str:
    return dialect(arch).identity(register)


def _numbers(item: Any, arch: str) -> list[int]:
    if isinstance(item, str):
        return [token.value for token in TextInsn(item, dialect(arch)).tokens if token.kind == "imm"]
    view = record_view(item)
    return [view.values.get("imm", view.values.get("i2", 0))]


_SINGLE_EXTENSIONS = {
    "x86_64": {"movzx", "movsx", "movsxd", "mov", "cdq", "cqo"},
    "x86_32": {"movzx", "movsx", "cdq", "and", "sar"},
    "arm64": {"uxtb", "uxth", "sxtb", "sxth", "sxtw", "mov"},
    "arm32": {"uxtb", "uxth", "sxtb", "sxth", "mov", "asr"},
    "ppc64": {"clrldi", "extsw", "extsh", "extsb", "rldicl"},
    "sparc64": {"srl", "sra"},
    "mips64": {"dext", "sll", "seb", "seh", "andi"},
    "s390x": {"llgfr", "lgfr", "llghr", "lghr", "lgbr"},
    "riscv64": {"addiw"},
}
_SINGLE_EXTENSIONS["mips64el"] = _SINGLE_EXTENSIONS["mips64"]
_SHIFT_PAIRS = {"sparc64": ("sllx", ("srlx", "srax")), "riscv64": ("slli", ("srli", "srai")),
                "mips64": ("dsll32", ("dsrl32", "dsra32")), "mips64el": ("dsll32", ("dsrl32", "dsra32"))}


def extension_length(items: list[Any], index: int, arch: str) -> int:
    """How many instructions from ``items[index]`` form a zero- or sign-extension in place (0: none)."""
    item = items[index]
    if is_label(item):
        return 0
    name = mnemonic_of(item)
    registers = _register_names(item, arch)
    same = len(registers) >= 1 and len(set(registers)) == 1
    if name in _SINGLE_EXTENSIONS.get(arch, ()):
        if arch == "x86_64" and name in ("cdq", "cqo"):
            return 1
        if arch == "x86_32":
            if name == "cdq":
                return 1
            if name == "and" and isinstance(item, str) and "ptr" in item and item.rstrip().endswith(", 0"):
                return 1
            if name == "sar":
                return 1 if same and _numbers(item, arch)[-1:] == [31] else 0
        if arch == "arm32":
            if name == "mov":
                return 1 if isinstance(item, str) and item.rstrip().endswith("#0") else 0
            if name == "asr":
                return 1 if _numbers(item, arch)[-1:] == [31] else 0
        if arch == "mips64" or arch == "mips64el":
            if name == "sll":
                return 1 if same and _numbers(item, arch) == [0] else 0
            if name == "andi":
                return 1 if same and _numbers(item, arch)[-1:] in ([0xFF], [0xFFFF]) else 0
        if arch == "riscv64" and name == "addiw":
            return 1 if same and _numbers(item, arch) == [0] else 0
        if arch == "sparc64":
            return 1 if same and _numbers(item, arch) == [0] else 0
        if arch == "ppc64" and name in ("clrldi", "rldicl"):
            return 1 if same else 0
        if len(registers) >= 2 and same:
            return 1
        return 0
    pair = _SHIFT_PAIRS.get(arch)
    if pair and name == pair[0] and same and index + 1 < len(items) and not is_label(items[index + 1]):
        after = items[index + 1]
        if mnemonic_of(after) in pair[1] and _register_names(after, arch) == registers \
                and _numbers(after, arch) == _numbers(item, arch):
            return 2
    return 0
