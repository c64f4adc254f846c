"""Classic BPF (the tcpdump filter bytecode): parse, validate, translate to eBPF.

The text format is what ``tcpdump -ddd`` prints: the instruction count, then one
``code jt jf k`` line (decimal) per instruction. Validation follows the kernel's
``bpf_check_classic`` (net/core/filter.c): known opcodes only, jumps inside the
program, division by a constant 0 and constant shifts of 32 or more refused,
scratch memory indices below 16 and never read before written, a return as the last
instruction, and an LD_ABS k in the ancillary range [SKF_AD_OFF, 0) only for an
extension the kernel knows (LD_IND and LDX_MSH take any k: a negative one is an
ordinary runtime offset). The kernel's refusals raise :class:`CbpfRejection`, which a
case turns into a validator outcome (so ``-- error`` cases pass); text that cannot be
read, and the extensions that need an skb the harness does not model, raise
:class:`CbpfError`.

Translation follows the kernel's ``bpf_convert_filter`` for socket filters: A is r0,
X is r7, a temporary r8, the packet length saved in r9, the scratch words M[0..15]
on the stack, packet loads as LD_ABS/LD_IND (an access outside the packet ends the
filter returning 0), and a division by X == 0 returns 0. Our translation is shorter
than the kernel's (a packet load is one LD_ABS/LD_IND here, 8 to 16 instructions
there), so a jump whose kernel translation overflows the 16-bit offset would still
fit here: :func:`validate` measures jumps with the kernel's lengths
(:func:`kernel_length`) and refuses those, as the kernel does.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness import isa
from harness.isa import Insn, Program

# Classes, sizes, modes, operations (include/uapi/linux/filter.h).
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
K_SRC, X_SRC, A_RVAL = 0x00, 0x08, 0x10
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
TAX, TXA = 0x00, 0x80
MEMWORDS = 16
MAX_INSNS = 4096
SKF_AD_OFF = -0x1000  # LD_ABS k in [SKF_AD_OFF, 0) names an ancillary extension (uapi filter.h)
# The extensions the kernel knows (include/linux/filter.h, bpf_anc_helper), by offset from
# SKF_AD_OFF. All but ALU_XOR_X (A ^= X) read the skb or the CPU, which the harness does not model.
SKF_AD_NAMES = {0: "PROTOCOL", 4: "PKTTYPE", 8: "IFINDEX", 12: "NLATTR", 16: "NLATTR_NEST", 20: "MARK",
                24: "QUEUE", 28: "HATYPE", 32: "RXHASH", 36: "CPU", 40: "ALU_XOR_X", 44: "VLAN_TAG",
                48: "VLAN_TAG_PRESENT", 52: "PAY_OFFSET", 56: "RANDOM", 60: "VLAN_TPID"}
SKF_AD_ALU_XOR_X = 40
S16_MIN, S16_MAX = -0x8000, 0x7FFF

A_REG, X_REG, TMP_REG, LEN_REG = 0, 7, 8, 9
SCRATCH_OFFSET = -4 * MEMWORDS  # M[i] lives at r10 - 64 + 4*i

_ALU_OPS = {0x00: "add", 0x10: "sub", 0x20: "mul", 0x30: "div", 0x40: "or", 0x50: "and",
            0x60: "lsh", 0x70: "rsh", 0x80: "neg", 0x90: "mod", 0xA0: "xor"}
_VALID = (
    {LD | W | ABS, LD | H | ABS, LD | B | ABS, LD | W | IND, LD | H | IND, LD | B | IND,
     LD | W | LEN, LD | IMM, LD | MEM, LDX | W | IMM, LDX | W | MEM, LDX | W | LEN, LDX | B | MSH,
     ST, STX, RET | K_SRC, RET | A_RVAL, MISC | TAX, MISC | TXA, JMP | JA}
    | {ALU | op | src for op in _ALU_OPS if op != 0x80 for src in (K_SRC, X_SRC)} | {ALU | 0x80}
    | {JMP | op | src for op in (JEQ, JGT, JGE, JSET) for src in (K_SRC, X_SRC)}
)


class CbpfError(ValueError):
    """A classic BPF program that cannot be read or run here; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class CbpfRejection(CbpfError):
    """A filter the kernel refuses to load (bpf_check_classic or bpf_convert_filter)."""


@dataclass(frozen=True)
class CInsn:
    code: int
    jt: int
    jf: int
    k: int

    @property
    def klass(self) -> int:
        return self.code & 0x07


def parse(text: str) -> list[CInsn]:
    """Read ``tcpdump -ddd`` output (``#`` comments allowed); errors name the line."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if words:
            rows.append((number, words))
    if not rows:
        raise CbpfError(1, "empty classic BPF program")
    (count_line, first), *body = rows
    if len(first) != 1 or not first[0].isdecimal():
        raise CbpfError(count_line, "the first line must be the instruction count")
    if int(first[0]) != len(body):
        raise CbpfError(count_line, f"count says {first[0]} instructions, {len(body)} follow")
    program = []
    for number, words in body:
        try:
            code, jt, jf, k = (int(word, 0) for word in words)
        except ValueError:
            raise CbpfError(number, "expected 'code jt jf k' (four numbers)") from None
        for field, value, low, high in (("code", code, 0, 0xFFFF), ("jt", jt, 0, 255), ("jf", jf, 0, 255),
                                        ("k", k, -(1 << 31), (1 << 32) - 1)):
            if not low <= value <= high:
                raise CbpfError(number, f"{field} {value} out of range ({low} to {high})")
        program.append(CInsn(code, jt, jf, k & 0xFFFFFFFF))
    return program


def validate(program: list[CInsn], lines: list[int] | None = None) -> None:
    """The kernel's static checks and conversion limits; raises CbpfRejection (or CbpfError
    for an extension the harness cannot run) naming the instruction's line."""
    lines = lines or [index + 2 for index in range(len(program))]
    if not 1 <= len(program) <= MAX_INSNS:
        raise CbpfRejection(1, f"a classic BPF program has 1 to {MAX_INSNS} instructions, not {len(program)}")
    for pc, insn in enumerate(program):
        where = lines[pc]
        if insn.code not in _VALID:
            raise CbpfRejection(where, f"instruction {pc}: unknown opcode {insn.code:#x}")
        op = insn.code & 0xF0
        k = insn.k
        if insn.klass == ALU and insn.code & X_SRC == K_SRC:
            if op in (0x30, 0x90) and k == 0:
                raise CbpfRejection(where, f"instruction {pc}: division by constant 0")
            if op in (0x60, 0x70) and k >= 32:
                raise CbpfRejection(where, f"instruction {pc}: shift by {k} (32 or more)")
        if insn.code in (LD | MEM, LDX | W | MEM, ST, STX) and k >= MEMWORDS:
            raise CbpfRejection(where, f"instruction {pc}: scratch memory index {k} (0-15)")
        if insn.klass == LD and insn.code & 0xE0 == ABS and SKF_AD_OFF <= _s32(k) < 0:
            extension = _s32(k) - SKF_AD_OFF
            if extension not in SKF_AD_NAMES:  # bpf_check_classic: unknown extension
                raise CbpfRejection(where, f"instruction {pc}: ld [{_s32(k)}] is in the ancillary range "
                                           f"but names no extension the kernel knows")
            if extension != SKF_AD_ALU_XOR_X:
                raise CbpfError(where, f"instruction {pc}: ancillary load SKF_AD_{SKF_AD_NAMES[extension]} "
                                       f"reads the skb or the CPU, which the harness does not model")
        if insn.klass == JMP:
            rest = len(program) - pc - 1
            if op == JA:
                if k >= rest:
                    raise CbpfRejection(where, f"instruction {pc}: ja +{k} leaves the program")
            elif insn.jt >= rest or insn.jf >= rest:
                raise CbpfRejection(where, f"instruction {pc}: jump target outside the program")
    if program[-1].klass != RET:
        raise CbpfRejection(lines[-1], "the last instruction must be a return")
    _check_scratch_reads(program, lines)
    _check_kernel_jump_offsets(program, lines)


def _is_ancillary(insn: CInsn) -> bool:
    return insn.klass == LD and insn.code & 0xE0 == ABS and SKF_AD_OFF <= _s32(insn.k) < 0


def _packet_load_length(insn: CInsn) -> int:
    """Instructions the kernel's convert_bpf_ld_abs emits for one LD_ABS/LD_IND (x86-64:
    unaligned access is efficient). A non-negative absolute offset gets a fast path
    (bounds check and direct load) before the 8-instruction helper-call path."""
    indirect = insn.code & 0xE0 == IND
    size = insn.code & 0x18
    offset = _s32(insn.k)
    slow = 8 + (1 if indirect and insn.k else 0)
    if indirect or offset < 0:
        return slow
    fast = 1 + (1 if offset else 0) + 1 + (1 if offset <= S16_MAX else 3) + (1 if size in (H, W) else 0) + 1
    return fast + slow


def kernel_length(insn: CInsn) -> int:
    """How many eBPF instructions the kernel's bpf_convert_filter makes of ``insn``."""
    code, klass = insn.code, insn.klass
    if klass == LD and code & 0xE0 in (ABS, IND):
        if _is_ancillary(insn):
            return 1  # the harness runs only ALU_XOR_X: one instruction there too
        return _packet_load_length(insn)
    if code == LDX | B | MSH:  # X = A; A = P[k] (as LD_ABS B); A &= 0xf; A <<= 2; T = X; X = A; A = T
        return 1 + _packet_load_length(CInsn(LD | ABS | B, 0, 0, insn.k)) + 5
    if klass == ALU and code & 0xF0 in (0x30, 0x90) and code & X_SRC:
        return 5  # mov32 X, X; if X != 0 skip; A = 0; exit; the division
    if klass == RET:
        return 2 if code & A_RVAL == 0 else 1
    if klass == JMP and code & 0xF0 != JA:
        extra = 1 if code & X_SRC == K_SRC and insn.k & 0x80000000 else 0
        if insn.jf == 0 or (insn.jt == 0 and code & 0xF0 in (JEQ, JGT, JGE)):
            return extra + 1
        return extra + 2
    return 1


def _check_kernel_jump_offsets(program: list[CInsn], lines: list[int]) -> None:
    """Refuse a jump whose offset in the kernel's translation leaves the 16-bit range
    (bpf_convert_filter's BPF_EMIT_JMP), though the harness's own shorter one may fit."""
    starts, position = [], 0
    for insn in program:
        starts.append(position)
        position += kernel_length(insn)
    for pc, insn in enumerate(program):
        if insn.klass != JMP:
            continue
        if insn.code & 0xF0 == JA:
            jumps = [(pc + 1 + insn.k, 0)]
        else:
            at = 1 if insn.code & X_SRC == K_SRC and insn.k & 0x80000000 else 0  # after the mov32
            if insn.jf == 0:
                jumps = [(pc + 1 + insn.jt, at)]
            elif insn.jt == 0 and insn.code & 0xF0 in (JEQ, JGT, JGE):
                jumps = [(pc + 1 + insn.jf, at)]
            else:
                jumps = [(pc + 1 + insn.jt, at), (pc + 1 + insn.jf, at + 1)]
        for target, within in jumps:
            offset = starts[target] - starts[pc] - 1 - within
            if not S16_MIN <= offset <= S16_MAX:
                raise CbpfRejection(lines[pc], f"instruction {pc}: the kernel's translation of this jump "
                                               f"spans {offset} instructions, beyond the 16-bit offset "
                                               f"(bpf_convert_filter refuses it)")


def _check_scratch_reads(program: list[CInsn], lines: list[int]) -> None:
    """Refuse a read of M[i] on a path where M[i] was never written (kernel: check_load_and_stores)."""
    valid = [0xFFFF] * len(program)  # bit i: M[i] is written on every path reaching pc
    valid[0] = 0
    for pc, insn in enumerate(program):
        known = valid[pc]
        if insn.code in (ST, STX):
            known |= 1 << insn.k
        elif insn.code in (LD | MEM, LDX | W | MEM) and not known >> insn.k & 1:
            raise CbpfError(lines[pc], f"instruction {pc}: reads M[{insn.k}] before any write")
        if insn.klass == RET:
            continue
        if insn.klass == JMP:
            targets = [pc + 1 + insn.k] if insn.code & 0xF0 == JA else [pc + 1 + insn.jt, pc + 1 + insn.jf]
        else:
            targets = [pc + 1]
        for target in targets:
            valid[target] &= known


def _s32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


def translate(program: list[CInsn]) -> Program:
    """The eBPF program a socket filter becomes (call :func:`validate` first)."""
    blocks: list[list[tuple[Insn, int | None, str]]] = []  # (insn, target cBPF pc, field)
    for pc, insn in enumerate(program):
        blocks.append(_translate_one(pc, insn))
    starts, slot = [], 3  # the prologue takes three slots
    for block in blocks:
        starts.append(slot)
        slot += len(block)
    out = [Insn(isa.ALU | isa.MOV | isa.K, A_REG, 0, 0, 0),   # A = 0
           Insn(isa.ALU | isa.MOV | isa.K, X_REG, 0, 0, 0),   # X = 0
           Insn(isa.ALU64 | isa.MOV | isa.X, LEN_REG, 2, 0, 0)]  # keep the packet length (r2)
    for block in blocks:
        for insn, target, _ in block:
            if target is not None:
                offset = starts[target] - (len(out) + 1)
                insn = Insn(insn.opcode, insn.dst, insn.src, offset, insn.imm)
            out.append(insn)
    return Program(tuple(out))


def _alu32(op: int, dst: int, src: int = 0, imm: int = 0, register: bool = False) -> Insn:
    return Insn(isa.ALU | op | (isa.X if register else isa.K), dst, src, 0, isa.to_s32(imm))


def _translate_one(pc: int, insn: CInsn) -> list[tuple[Insn, int | None, str]]:
    code, k = insn.code, insn.k
    plain = lambda *insns: [(i, None, "") for i in insns]  # noqa: E731
    size = {W: isa.W, H: isa.H, B: isa.B}.get(code & 0x18, isa.W)
    klass = insn.klass
    exit_insn = Insn(isa.JMP | isa.EXIT, 0, 0, 0, 0)
    if klass == LD:
        mode = code & 0xE0
        if _is_ancillary(insn):  # only SKF_AD_ALU_XOR_X gets here (validate): A ^= X
            return plain(_alu32(isa.XOR, A_REG, X_REG, register=True))
        if mode == ABS:  # A = ntoh(P[k:size])
            return plain(Insn(isa.LD | isa.ABS | size, 0, 0, 0, isa.to_s32(k)))
        if mode == IND:  # A = ntoh(P[X + k:size])
            return plain(Insn(isa.LD | isa.IND | size, 0, X_REG, 0, isa.to_s32(k)))
        if mode == LEN:  # A = packet length
            return plain(_alu32(isa.MOV, A_REG, LEN_REG, register=True))
        if mode == IMM:  # A = k
            return plain(_alu32(isa.MOV, A_REG, imm=k))
        return plain(Insn(isa.LDX | isa.MEM | isa.W, A_REG, 10, SCRATCH_OFFSET + 4 * k, 0))  # A = M[k]
    if klass == LDX:
        mode = code & 0xE0
        if mode == IMM:
            return plain(_alu32(isa.MOV, X_REG, imm=k))
        if mode == LEN:
            return plain(_alu32(isa.MOV, X_REG, LEN_REG, register=True))
        if mode == MEM:
            return plain(Insn(isa.LDX | isa.MEM | isa.W, X_REG, 10, SCRATCH_OFFSET + 4 * k, 0))
        # MSH: X = 4 * (P[k] & 0xf), keeping A in the temporary
        return plain(Insn(isa.ALU64 | isa.MOV | isa.X, TMP_REG, A_REG, 0, 0),
                     Insn(isa.LD | isa.ABS | isa.B, 0, 0, 0, isa.to_s32(k)),
                     _alu32(isa.AND, A_REG, imm=0xF), _alu32(isa.LSH, A_REG, imm=2),
                     Insn(isa.ALU64 | isa.MOV | isa.X, X_REG, A_REG, 0, 0),
                     Insn(isa.ALU64 | isa.MOV | isa.X, A_REG, TMP_REG, 0, 0))
    if klass in (ST, STX):  # M[k] = A or X
        source = A_REG if klass == ST else X_REG
        return plain(Insn(isa.STX | isa.MEM | isa.W, 10, source, SCRATCH_OFFSET + 4 * k, 0))
    if klass == ALU:
        op = code & 0xF0
        if op == 0x80:
            return plain(_alu32(isa.NEG, A_REG))
        if code & X_SRC:
            operation = _alu32(op, A_REG, X_REG, register=True)
            if op in (0x30, 0x90):  # if (X == 0) return 0
                return plain(Insn(isa.JMP | isa.JNE | isa.K, X_REG, 0, 2, 0),
                             _alu32(isa.XOR, A_REG, A_REG, register=True), exit_insn, operation)
            return plain(operation)
        return plain(_alu32(op, A_REG, imm=k))
    if klass == RET:
        if code & A_RVAL:
            return plain(exit_insn)
        return plain(_alu32(isa.MOV, A_REG, imm=k), exit_insn)
    if klass == MISC:
        if code & 0xF8 == TXA:
            return plain(_alu32(isa.MOV, A_REG, X_REG, register=True))
        return plain(_alu32(isa.MOV, X_REG, A_REG, register=True))
    # JMP
    op = code & 0xF0
    if op == JA:
        return [(Insn(isa.JMP | isa.JA, 0, 0, 0, 0), pc + 1 + k, "off")]
    block: list[tuple[Insn, int | None, str]] = []
    if code & X_SRC:
        compare = Insn(isa.JMP | op | isa.X, A_REG, X_REG, 0, 0)
    elif k & 0x80000000:  # eBPF immediates sign-extend: compare with a zero-extended copy
        block.append((_alu32(isa.MOV, TMP_REG, imm=k), None, ""))
        compare = Insn(isa.JMP | op | isa.X, A_REG, TMP_REG, 0, 0)
    else:
        compare = Insn(isa.JMP | op | isa.K, A_REG, 0, 0, k)
    block.append((compare, pc + 1 + insn.jt, "off"))
    if insn.jf:
        block.append((Insn(isa.JMP | isa.JA, 0, 0, 0, 0), pc + 1 + insn.jf, "off"))
    return block


def compile_filter(text: str) -> Program:
    """Parse, validate and translate ``tcpdump -ddd`` text; raises CbpfError."""
    lines = [number for number, line in enumerate(text.splitlines(), start=1)
             if line.split("#", 1)[0].split()]
    program = parse(text)
    validate(program, lines[1:])
    return translate(program)
