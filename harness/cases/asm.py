"""Assembler and disassembler for the uBPF / bpf_conformance text dialect.

Examples of the dialect: ``mov32 %r0, 0``, ``ldxh %r0, [%r1+2]``,
``stxdw [%r10-8], %r0``, ``lddw %r0, 0x1122334455667788``,
``jne %r0, %r1, +2`` or ``jne %r0, %r1, label``, ``lock fetch add [%r1], %r2``,
``be16 %r0``, ``movsx832 %r0, %r1``, ``call 1``, ``call local name``, ``exit``.

Every number is range-checked against the field it fills, and an error names the
field and its range: a 32-bit immediate accepts -2147483648 to 4294967295 (so
``mov %r0, 0xffffffff`` is -1, as bpf_conformance writes it), a 16-bit offset
-32768 to 32767, ``lddw`` any 64-bit value (signed or unsigned). Nothing is
truncated silently. A jump to the undefined label ``exit`` goes to the program's
first ``exit`` instruction (bpf_conformance's assembler defines that label), ``swapN``
is ``bswapN``, ``call %rN`` (or ``callx %rN``) encodes a call through a register
(opcode 0x8d, register in dst; the validator refuses it), and registers ``%r11`` to
``%r15`` are encodable (the 4-bit field holds them; the validator refuses them).
Our own addition is ``.raw 0x<16 hex
digits>`` for a slot no mnemonic describes, so that the disassembly of any byte
string assembles back to the same bytes, and ``.rept N`` ... ``.endr`` (as in GNU
as) to repeat a block of lines, so a case that needs a 20000-instruction body to
push a branch past a JIT's short-branch range stays a few lines long.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from harness import isa
from harness.isa import Insn, Program


class AsmError(ValueError):
    """A line the assembler cannot read; ``line`` is 1-based within the source."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


# --- mnemonic tables -------------------------------------------------------

_ALU_NAMES = {name: op for op, name in isa.ALU_OPS.items()}
_JMP_NAMES = {name: op for op, name in isa.JMP_CONDS.items()}
_SIZES = {suffix: size for size, suffix in isa.SIZE_SUFFIX.items()}
_REG = re.compile(r"^%r(\d+)$")
_MEM = re.compile(r"^\[\s*%r(\d+)\s*(?:([+-])\s*((?:0x)?[0-9a-fA-F]+))?\s*\]$")
_LABEL = re.compile(r"^[A-Za-z_.][\w.]*$")


def _number(text: str, line: int) -> int:
    text = text.strip()
    if "_" in text:  # Python would accept 0x1_0; the bpf_conformance dialect does not
        raise AsmError(line, f"expected a number, got {text!r}")
    try:
        return int(text, 0)
    except ValueError:
        raise AsmError(line, f"expected a number, got {text!r}") from None


MAX_ENCODABLE_REGISTER = 15  # the 4-bit register fields; above %r10 the validator refuses


def _reg(text: str, line: int) -> int:
    match = _REG.match(text.strip())
    if not match:
        raise AsmError(line, f"expected a register like %r1, got {text!r}")
    number = int(match.group(1))
    if number > MAX_ENCODABLE_REGISTER:
        raise AsmError(line, f"no register %r{number} (a register field holds %r0-%r15)")
    return number


def _mem(text: str, line: int, mnemonic: str) -> tuple[int, int]:
    match = _MEM.match(text.strip())
    if not match:
        raise AsmError(line, f"expected a memory operand like [%r1+8], got {text!r}")
    reg = int(match.group(1))
    if reg > MAX_ENCODABLE_REGISTER:
        raise AsmError(line, f"no register %r{reg} (a register field holds %r0-%r15)")
    off = _number(match.group(3), line) if match.group(3) else 0
    if match.group(2) == "-":
        off = -off
    return reg, _checked(off, f"{mnemonic} memory offset", OFF16, line)


# Field ranges: (lowest, highest) value the text may give for each kind of field.
IMM32 = (-(1 << 31), (1 << 32) - 1)  # signed or unsigned 32-bit notation of imm
SIGNED32 = (-(1 << 31), (1 << 31) - 1)  # a slot offset carried in imm (gotol, call local)
OFF16 = (-(1 << 15), (1 << 15) - 1)  # the signed 16-bit off field
IMM64 = (-(1 << 63), (1 << 64) - 1)  # lddw's 64-bit value
RAW64 = (0, (1 << 64) - 1)  # .raw: the 8 bytes of a slot as one number
MAP_INDEX = (0, (1 << 31) - 1)  # lddw map:INDEX


def _checked(value: int, field: str, bounds: tuple[int, int], line: int) -> int:
    """``value`` when ``bounds`` hold it; otherwise an AsmError naming the field and its range."""
    low, high = bounds
    if not low <= value <= high:
        shown = hex(value) if abs(value) >= 0x10000 else str(value)
        raise AsmError(line, f"{field} {shown} out of range ({low} to {high})")
    return value


def _imm32(text: str, line: int, field: str = "immediate") -> int:
    return isa.to_s32(_checked(_number(text, line), field, IMM32, line) & 0xFFFFFFFF)


def _split_operands(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


@dataclass
class _Pending:
    """An instruction whose jump target is a label, resolved after the first pass."""

    slot: int
    label: str
    line: int
    field: str  # "off" or "imm"


def assemble(source: str, map_names: dict[str, int] | None = None,
             slot_lines: list[int] | None = None) -> Program:
    """Assemble ``source`` into a program; raises AsmError naming the line.

    ``lddw %rN, map:NAME`` (or ``map:INDEX``) loads a map (src=1, imm = its index);
    ``map_names`` gives the index of each name a case declares. ``slot_lines``, when
    given, receives the source line of every slot.
    """
    slots: list[Insn] = []
    labels: dict[str, int] = {}
    pending: list[_Pending] = []
    first_exit: int | None = None
    repeated: dict[str, list[Insn]] = {}
    for number, text in _expand_repeats(source):
        while text:
            label_match = re.match(r"^([A-Za-z_.][\w.]*)\s*:(.*)$", text)
            if not label_match:
                break
            name = label_match.group(1)
            if name in labels:
                raise AsmError(number, f"label {name!r} defined twice")
            labels[name] = len(slots)
            text = label_match.group(2).strip()
        if not text:
            continue
        parts = text.split(None, 1)
        mnemonic = parts[0].lower()
        rest = parts[1] if len(parts) > 1 else ""
        if text in repeated:  # an identical line seen before (e.g. a .rept body)
            if mnemonic == "exit" and first_exit is None:
                first_exit = len(slots)
            slots.extend(repeated[text])
            if slot_lines is not None:
                slot_lines.extend([number] * len(repeated[text]))
            continue
        if mnemonic == "lock":
            words = rest.split(None, 2 if rest.startswith("fetch") else 1)
            if len(words) < 2:
                raise AsmError(number, "lock needs an operation and operands")
            if words[0] == "fetch":
                mnemonic, rest = f"lock fetch {words[1]}", words[2] if len(words) > 2 else ""
            else:
                mnemonic, rest = f"lock {words[0]}", words[1]
        elif mnemonic == "call" and rest.startswith("local"):
            mnemonic, rest = "call local", rest[5:].strip()
        elif mnemonic == "call" and rest.strip().startswith("%"):
            mnemonic = "callx"
        operands = _split_operands(rest)
        waiting = len(pending)
        try:
            if mnemonic == "lddw" and len(operands) == 2 and operands[1].startswith("map:"):
                insns = _assemble_map_load(operands, number, map_names or {})
            else:
                insns = _assemble_one(mnemonic, operands, number, len(slots), pending)
        except AsmError:
            raise
        except Exception as error:  # an assembler bug still names the line it met
            raise AsmError(number, f"{mnemonic}: cannot assemble ({type(error).__name__}: {error})") from None
        if mnemonic == "exit" and first_exit is None:
            first_exit = len(slots)
        if slot_lines is not None:
            slot_lines.extend([number] * len(insns))
        if len(pending) == waiting:  # no label to resolve: the encoding depends on the text only
            repeated[text] = insns
        slots.extend(insns)
    for item in pending:
        target = labels.get(item.label)
        if target is None and item.label == "exit" and first_exit is not None:
            target = first_exit
        if target is None:
            raise AsmError(item.line, f"undefined label {item.label!r}")
        delta = target - item.slot - 1
        insn = slots[item.slot]
        if item.field == "off":
            if not -0x8000 <= delta <= 0x7FFF:
                raise AsmError(item.line, f"jump to {item.label!r} is out of 16-bit range")
            slots[item.slot] = Insn(insn.opcode, insn.dst, insn.src, delta, insn.imm)
        else:
            slots[item.slot] = Insn(insn.opcode, insn.dst, insn.src, insn.off, delta)
    return Program(tuple(slots))


MAX_REPEATED_LINES = 1 << 20


def _expand_repeats(source: str) -> list[tuple[int, str]]:
    """Comment-free, stripped (line number, text) pairs with ``.rept`` blocks expanded."""
    # Each open block: (line of its .rept, repeat count, lines collected so far).
    stack: list[tuple[int, int, list[tuple[int, str]]]] = [(0, 1, [])]
    for number, raw_line in enumerate(source.splitlines(), start=1):
        text = raw_line.split("#", 1)[0].strip()
        words = text.split()
        if words and words[0].lower() == ".rept":
            if len(words) != 2:
                raise AsmError(number, ".rept needs exactly one count")
            count = _checked(_number(words[1], number), ".rept count", (0, MAX_REPEATED_LINES), number)
            stack.append((number, count, []))
        elif words and words[0].lower() == ".endr":
            if len(stack) == 1:
                raise AsmError(number, ".endr without .rept")
            start, count, body = stack.pop()
            # Sized before repeating: a huge count must cost nothing but this message.
            if len(stack[-1][2]) + len(body) * count > MAX_REPEATED_LINES:
                raise AsmError(start, f".rept {count} of {len(body)} line(s) expands past "
                                      f"{MAX_REPEATED_LINES} lines")
            stack[-1][2].extend(body * count)
        elif text:
            stack[-1][2].append((number, text))
    if len(stack) > 1:
        raise AsmError(stack[-1][0], ".rept without .endr")
    return stack[0][2]


def _assemble_map_load(operands: list[str], line: int, map_names: dict[str, int]) -> list[Insn]:
    name = operands[1][4:].strip()
    if name in map_names:
        index = map_names[name]
    elif name.isdigit():
        index = _checked(_number(name, line), "lddw map index", MAP_INDEX, line)
    else:
        known = ", ".join(map_names) or "none"
        raise AsmError(line, f"unknown map {name!r} (declared: {known})")
    return list(isa.lddw_pair(_reg(operands[0], line), index, isa.LDDW_MAP_FD))


def _need(operands: list[str], count: int, mnemonic: str, line: int) -> None:
    if len(operands) != count:
        raise AsmError(line, f"{mnemonic} takes {count} operand(s), got {len(operands)}")


def _jump_target(text: str, line: int, slot: int, pending: list[_Pending],
                 field: str, mnemonic: str) -> int:
    """A numeric offset (+N/-N/N) or a label resolved later (returns 0 for now)."""
    text = text.strip()
    if re.match(r"^[+-]?(0x[0-9a-fA-F]+|\d+)$", text):
        bounds = OFF16 if field == "off" else SIGNED32
        return _checked(_number(text, line), f"{mnemonic} jump offset", bounds, line)
    if not _LABEL.match(text):
        raise AsmError(line, f"expected a jump offset or label, got {text!r}")
    pending.append(_Pending(slot, text, line, field))
    return 0


def _assemble_one(mnemonic: str, ops: list[str], line: int, slot: int,
                  pending: list[_Pending]) -> list[Insn]:
    if mnemonic == ".raw":
        _need(ops, 1, mnemonic, line)
        value = _checked(_number(ops[0], line), ".raw slot", RAW64, line)
        return [Insn.decode(struct.pack(">Q", value))]
    if mnemonic == "exit":
        _need(ops, 0, mnemonic, line)
        return [Insn(isa.JMP | isa.EXIT)]
    if mnemonic == "call":
        _need(ops, 1, mnemonic, line)
        return [Insn(isa.JMP | isa.CALL, 0, isa.CALL_HELPER, 0, _imm32(ops[0], line, "call helper id"))]
    if mnemonic == "callx":  # a call through a register: bpf_conformance's encoding, dst = register
        _need(ops, 1, mnemonic, line)
        return [Insn(isa.JMP | isa.CALL | isa.X, _reg(ops[0], line))]
    if mnemonic == "call local":
        _need(ops, 1, mnemonic, line)
        imm = _jump_target(ops[0], line, slot, pending, "imm", mnemonic)
        return [Insn(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, imm)]
    if mnemonic == "ja":
        _need(ops, 1, mnemonic, line)
        return [Insn(isa.JMP | isa.JA, 0, 0, _jump_target(ops[0], line, slot, pending, "off", mnemonic))]
    if mnemonic in ("ja32", "gotol"):
        _need(ops, 1, mnemonic, line)
        return [Insn(isa.JMP32 | isa.JA, 0, 0, 0,
                     _jump_target(ops[0], line, slot, pending, "imm", mnemonic))]
    if mnemonic == "lddw":
        _need(ops, 2, mnemonic, line)
        value = _checked(_number(ops[1], line), "lddw immediate", IMM64, line)
        return list(isa.lddw_pair(_reg(ops[0], line), value & ((1 << 64) - 1)))
    if mnemonic.startswith("lock "):
        return [_assemble_atomic(mnemonic, ops, line)]
    match = re.match(r"^(ldabs|ldind)(b|h|w)$", mnemonic)
    if match:
        mode = isa.ABS if match.group(1) == "ldabs" else isa.IND
        size = _SIZES[match.group(2)]
        if mode == isa.ABS:
            _need(ops, 1, mnemonic, line)
            return [Insn(isa.LD | mode | size, 0, 0, 0, _imm32(ops[0], line, f"{mnemonic} offset"))]
        _need(ops, 2, mnemonic, line)
        return [Insn(isa.LD | mode | size, 0, _reg(ops[0], line), 0,
                     _imm32(ops[1], line, f"{mnemonic} offset"))]
    match = re.match(r"^(ldxs|ldx|stx|st)(b|h|w|dw)$", mnemonic)
    if match:
        kind, size = match.group(1), _SIZES[match.group(2)]
        _need(ops, 2, mnemonic, line)
        if kind in ("ldx", "ldxs"):
            if kind == "ldxs" and size == isa.DW:
                raise AsmError(line, "no sign-extending 8-byte load")
            src, off = _mem(ops[1], line, mnemonic)
            mode = isa.MEMSX if kind == "ldxs" else isa.MEM
            return [Insn(isa.LDX | mode | size, _reg(ops[0], line), src, off)]
        dst, off = _mem(ops[0], line, mnemonic)
        if kind == "stx":
            return [Insn(isa.STX | isa.MEM | size, dst, _reg(ops[1], line), off)]
        return [Insn(isa.ST | isa.MEM | size, dst, 0, off, _imm32(ops[1], line, f"{mnemonic} immediate"))]
    match = re.match(r"^(le|be|bswap|swap)(16|32|64)$", mnemonic)
    if match:  # swapN is bpf_conformance's name for bswapN
        _need(ops, 1, mnemonic, line)
        opcode = {"le": isa.ALU | isa.END | isa.TO_LE, "be": isa.ALU | isa.END | isa.TO_BE,
                  "bswap": isa.ALU64 | isa.END | isa.TO_LE, "swap": isa.ALU64 | isa.END | isa.TO_LE,
                  }[match.group(1)]
        return [Insn(opcode, _reg(ops[0], line), 0, 0, int(match.group(2)))]
    match = re.match(r"^movsx(8|16|32)(32|64)$", mnemonic)
    if match:
        bits, width = int(match.group(1)), match.group(2)
        if width == "32" and bits == 32:
            raise AsmError(line, "movsx3232 does not exist")
        _need(ops, 2, mnemonic, line)
        klass = isa.ALU if width == "32" else isa.ALU64
        return [Insn(klass | isa.MOV | isa.X, _reg(ops[0], line), _reg(ops[1], line), bits)]
    base = mnemonic[:-2] if mnemonic.endswith(("32", "64")) else mnemonic
    signed = base in ("sdiv", "smod")
    if base in _ALU_NAMES or signed:
        op = _ALU_NAMES[base[1:] if signed else base]
        klass = isa.ALU if mnemonic.endswith("32") else isa.ALU64
        off = 1 if signed else 0
        if op == isa.NEG:
            _need(ops, 1, mnemonic, line)
            return [Insn(klass | op | isa.K, _reg(ops[0], line))]
        _need(ops, 2, mnemonic, line)
        dst = _reg(ops[0], line)
        if ops[1].startswith("%"):
            return [Insn(klass | op | isa.X, dst, _reg(ops[1], line), off)]
        return [Insn(klass | op | isa.K, dst, 0, off, _imm32(ops[1], line, f"{mnemonic} immediate"))]
    match = re.match(r"^([a-z]+?)(32)?$", mnemonic)
    if match and match.group(1) in _JMP_NAMES:
        _need(ops, 3, mnemonic, line)
        klass = isa.JMP32 if match.group(2) else isa.JMP
        op = _JMP_NAMES[match.group(1)]
        dst = _reg(ops[0], line)
        off = _jump_target(ops[2], line, slot, pending, "off", mnemonic)
        if ops[1].startswith("%"):
            return [Insn(klass | op | isa.X, dst, _reg(ops[1], line), off)]
        return [Insn(klass | op | isa.K, dst, 0, off, _imm32(ops[1], line, f"{mnemonic} immediate"))]
    raise AsmError(line, f"unknown mnemonic {mnemonic!r}")


def _assemble_atomic(mnemonic: str, ops: list[str], line: int) -> Insn:
    words = mnemonic.split()
    fetch = words[1] == "fetch"
    name = words[-1]
    width32 = name.endswith("32")
    base = name[:-2] if width32 else name
    size = isa.W if width32 else isa.DW
    if base == "xchg" and not fetch:
        imm = isa.ATOMIC_XCHG
    elif base == "cmpxchg" and not fetch:
        imm = isa.ATOMIC_CMPXCHG
    elif base in _ALU_NAMES and _ALU_NAMES[base] in isa.ATOMIC_OPS:
        imm = _ALU_NAMES[base] | (isa.ATOMIC_FETCH if fetch else 0)
    else:
        raise AsmError(line, f"unknown atomic operation {mnemonic!r}")
    _need(ops, 2, mnemonic, line)
    dst, off = _mem(ops[0], line, mnemonic)
    return Insn(isa.STX | isa.ATOMIC | size, dst, _reg(ops[1], line), off, imm)


# --- disassembler ----------------------------------------------------------

def _mem_operand(reg: int, off: int) -> str:
    if off == 0:
        return f"[%r{reg}]"
    return f"[%r{reg}{'+' if off > 0 else '-'}{abs(off)}]"


def _signed(value: int) -> str:
    return f"+{value}" if value >= 0 else str(value)


def _imm_text(value: int) -> str:
    return hex(value) if value >= 0x10000 else str(value) if value >= -0x10000 else "-" + hex(-value)


def _raw(insn: Insn) -> str:
    return f".raw 0x{struct.unpack('>Q', insn.encode())[0]:016x}"


def disassemble_insn(insn: Insn, next_insn: Insn | None = None) -> str:
    """One instruction as text (an lddw needs its second slot as ``next_insn``).

    Anything the ISA does not define, or a field the text cannot carry, comes out
    as ``.raw`` so that reassembly is exact.
    """
    info = isa.describe(insn)
    if info is None or insn.dst > 10 or insn.src > 10:
        return _raw(insn)
    text = _disassemble_valid(insn, next_insn, info.mnemonic)
    if text is None:
        return _raw(insn)
    return text


def _disassemble_valid(insn: Insn, next_insn: Insn | None, mnemonic: str) -> str | None:
    klass, opcode = insn.klass, insn.opcode
    dst, src, off, imm = insn.dst, insn.src, insn.off, insn.imm
    if klass in (isa.ALU, isa.ALU64):
        op = insn.op
        if op == isa.END:
            return None if (src or off) else f"{mnemonic} %r{dst}"
        if op == isa.MOV and insn.source == isa.X and off:
            return None if imm else f"{mnemonic} %r{dst}, %r{src}"
        if op == isa.NEG:
            return None if (src or off or imm) else f"{mnemonic} %r{dst}"
        if op not in (isa.DIV, isa.MOD) and off:
            return None
        if insn.source == isa.X:
            return None if imm else f"{mnemonic} %r{dst}, %r{src}"
        return None if src else f"{mnemonic} %r{dst}, {_imm_text(imm)}"
    if klass in (isa.JMP, isa.JMP32):
        op = insn.op
        if opcode == isa.JMP | isa.EXIT:
            return None if (dst or src or off or imm) else "exit"
        if opcode == isa.JMP | isa.CALL:
            if dst or off:
                return None
            return f"call local {_signed(imm)}" if src == isa.CALL_LOCAL else f"call {imm}"
        if op == isa.JA:
            if klass == isa.JMP:
                return None if (dst or src or imm) else f"ja {_signed(off)}"
            return None if (dst or src or off) else f"gotol {_signed(imm)}"
        if insn.source == isa.X:
            return None if imm else f"{mnemonic} %r{dst}, %r{src}, {_signed(off)}"
        return None if src else f"{mnemonic} %r{dst}, {_imm_text(imm)}, {_signed(off)}"
    if opcode == isa.LDDW:
        if next_insn is None or off or next_insn.opcode or next_insn.dst or next_insn.src \
                or next_insn.off or src not in (isa.LDDW_PLAIN, isa.LDDW_MAP_FD):
            return None
        if src == isa.LDDW_MAP_FD:
            return None if next_insn.imm or imm < 0 else f"lddw %r{dst}, map:{imm}"
        value = (imm & 0xFFFFFFFF) | ((next_insn.imm & 0xFFFFFFFF) << 32)
        return f"lddw %r{dst}, {hex(value)}"
    mode = insn.mode
    if mode in (isa.ABS, isa.IND):
        if dst or off:
            return None
        if mode == isa.ABS:
            return None if src else f"{mnemonic} {_imm_text(imm)}"
        return f"{mnemonic} %r{src}, {_imm_text(imm)}"
    if klass == isa.LDX:
        return None if imm else f"{mnemonic} %r{dst}, {_mem_operand(src, off)}"
    if klass == isa.ST:
        return None if src else f"{mnemonic} {_mem_operand(dst, off)}, {_imm_text(imm)}"
    if klass == isa.STX and mode == isa.MEM:
        return None if imm else f"{mnemonic} {_mem_operand(dst, off)}, %r{src}"
    if klass == isa.STX and mode == isa.ATOMIC:
        return f"{mnemonic} {_mem_operand(dst, off)}, %r{src}"
    return None


def disassemble(program: Program) -> list[str]:
    """One text line per slot-starting instruction; an lddw's second slot is folded in.

    A lone or malformed second half of an lddw is printed as ``.raw``.
    """
    lines: list[str] = []
    index = 0
    insns = program.insns
    while index < len(insns):
        insn = insns[index]
        if insn.opcode == isa.LDDW:
            following = insns[index + 1] if index + 1 < len(insns) else None
            text = disassemble_insn(insn, following)
            lines.append(text)
            if not text.startswith(".raw") and following is not None:
                index += 2
                continue
            index += 1
            continue
        lines.append(disassemble_insn(insn))
        index += 1
    return lines


def disassemble_text(program: Program) -> str:
    return "\n".join(disassemble(program)) + "\n"
