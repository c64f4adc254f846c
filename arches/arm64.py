"""AArch64 JIT backend: assembly text for keystone, one call per program.

Shape after the kernel's arch/arm64/net/bpf_jit_comp.c: the register map at the
top, then ``build_prologue`` / ``build_epilogue`` and one builder per instruction
class for the translation driver (arches/driver.py). Atomics are LL/SC
loops (ldxr/stxr): Unicorn's default CPU traps on LSE atomics and keystone cannot
assemble them (DESIGN.md).

AArch64 division needs no guard: ``udiv``/``sdiv`` by zero give 0, ``sdiv``
INT_MIN / -1 gives INT_MIN, and ``msub`` then yields the ISA's modulo in every
edge case (dst for a zero divisor, 0 for INT_MIN % -1). Register shifts mask the
count to the operand width, as the ISA does.
"""
from __future__ import annotations


import capstone
import keystone
import unicorn
from unicorn import arm64_const as ua

from arches.driver import AssemblyBackend, local_label
from harness import isa, layout
from harness.isa import Insn

# eBPF register -> AArch64 register (the kernel's map, bpf2a64[] in bpf_jit_comp.c).
REGISTER_MAP = {0: "x7", 1: "x0", 2: "x1", 3: "x2", 4: "x3", 5: "x4",
                6: "x19", 7: "x20", 8: "x21", 9: "x22", 10: "x25"}
# Scratch registers no eBPF register uses; x26 keeps the entry stack pointer.
TMP1, TMP2, TMP3, TMP4 = "x9", "x10", "x11", "x12"
SAVED_SP = "x26"

_ALU = {isa.ADD: "add", isa.SUB: "sub", isa.MUL: "mul", isa.OR: "orr", isa.AND: "and",
        isa.XOR: "eor", isa.LSH: "lsl", isa.RSH: "lsr", isa.ARSH: "asr"}
_COND = {isa.JEQ: "eq", isa.JNE: "ne", isa.JGT: "hi", isa.JGE: "hs", isa.JLT: "lo", isa.JLE: "ls",
         isa.JSGT: "gt", isa.JSGE: "ge", isa.JSLT: "lt", isa.JSLE: "le", isa.JSET: "ne"}
_INVERSE = {"eq": "ne", "ne": "eq", "hi": "ls", "ls": "hi", "hs": "lo", "lo": "hs",
            "gt": "le", "le": "gt", "ge": "lt", "lt": "ge"}
_LOAD = {1: "ldurb", 2: "ldurh", 4: "ldur", 8: "ldur"}
_LOAD_SIGNED = {1: "ldursb", 2: "ldursh", 4: "ldursw"}
_LOAD_INDEXED = {1: "ldrb", 2: "ldrh", 4: "ldr", 8: "ldr"}
_LOAD_SIGNED_INDEXED = {1: "ldrsb", 2: "ldrsh", 4: "ldrsw"}
_STORE = {1: "sturb", 2: "sturh", 4: "stur", 8: "stur"}
_STORE_INDEXED = {1: "strb", 2: "strh", 4: "str", 8: "str"}


def w(register: str) -> str:
    """The 32-bit view of an x register."""
    return "w" + register[1:]


def sized(register: str, width: int) -> str:
    return register if width == 64 else w(register)


def move_immediate(register: str, value: int) -> list[str]:
    """MOVZ/MOVN + MOVK: load a 64-bit constant without a literal pool."""
    value &= (1 << 64) - 1
    chunks = [(value >> shift) & 0xFFFF for shift in (0, 16, 32, 48)]
    if chunks.count(0xFFFF) > chunks.count(0):
        first = next(i for i, chunk in enumerate(chunks) if chunk != 0xFFFF) if value != (1 << 64) - 1 else 0
        lines = [f"movn {register}, #{(~chunks[first]) & 0xFFFF:#x}, lsl #{16 * first}"]
        lines += [f"movk {register}, #{chunk:#x}, lsl #{16 * i}" for i, chunk in enumerate(chunks)
                  if chunk != 0xFFFF and i != first]
        return lines
    first = next((i for i, chunk in enumerate(chunks) if chunk), 0)
    lines = [f"movz {register}, #{chunks[first]:#x}, lsl #{16 * first}"]
    lines += [f"movk {register}, #{chunk:#x}, lsl #{16 * i}" for i, chunk in enumerate(chunks)
              if chunk and i != first]
    return lines


class Arm64Backend(AssemblyBackend):
    name = "arm64"
    byte_order = "little"
    uc_arch, uc_mode = unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM
    cs_arch, cs_mode = capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM
    ks_arch, ks_mode = keystone.KS_ARCH_ARM64, keystone.KS_MODE_LITTLE_ENDIAN
    short_branch_reach = 1 << 20  # b.cond: imm19 words (Arm ARM, "B.cond"); keystone truncates beyond
    longest_branch_reach = 1 << 27  # b: imm26 words (Arm ARM, "B"): +-128 MiB
    register_map = REGISTER_MAP
    argument_registers = (ua.UC_ARM64_REG_X0, ua.UC_ARM64_REG_X1, ua.UC_ARM64_REG_X2,
                          ua.UC_ARM64_REG_X3, ua.UC_ARM64_REG_X4)
    return_register = ua.UC_ARM64_REG_X0  # AAPCS64: helpers return in x0; the epilogue copies x7 there
    stack_pointer = ua.UC_ARM64_REG_SP
    program_counter = ua.UC_ARM64_REG_PC
    general_registers = tuple(getattr(ua, f"UC_ARM64_REG_X{n}") for n in range(31))
    # AAPCS64, section 6.1.1: x0-x17 are corruptible by a callee (x18 is the platform
    # register; x30 holds the return address the stub's ret uses).
    caller_saved_registers = tuple(getattr(ua, f"UC_ARM64_REG_X{n}") for n in range(18))
    # Callee-saved: x19-x28, the frame pointer x29 (and sp), and the low 64 bits of v8-v15 (d8-d15).
    callee_saved = {**{f"x{n}": getattr(ua, f"UC_ARM64_REG_X{n}") for n in range(19, 30)},
                    **{f"d{n}": getattr(ua, f"UC_ARM64_REG_D{n}") for n in range(8, 16)}}
    callee_saved_source = "AAPCS64 (Arm IHI 0055), section 6.1.1 and 6.1.2"
    helper_stub = bytes.fromhex("c0035fd6")  # ret
    instruction_width = 4
    sentinel_fill = bytes.fromhex("1f2003d5")  # nop

    def set_return_address(self, uc, address: int) -> None:
        uc.reg_write(ua.UC_ARM64_REG_X30, address)  # the link register

    # --- translation ----------------------------------------------------------------

    def conditional_branch(self, condition: str, target: str, skip: str) -> list[str]:
        """b.cond to ``target``; in far mode an inverted b.cond over ``b`` (+-128 MiB) to label ``skip``."""
        if not self.far_branches:
            return [f"b.{condition} {target}"]
        return [f"b.{_INVERSE[condition]} {skip}", f"b {target}", f"{skip}:"]

    def build_prologue(self, body: str) -> list[str]:
        return (["stp x29, x30, [sp, #-16]!", "stp x19, x20, [sp, #-16]!", "stp x21, x22, [sp, #-16]!",
                 "stp x25, x26, [sp, #-16]!", f"mov {SAVED_SP}, sp"]
                + move_immediate("x25", layout.STACK_TOP) + [f"bl {body}"])

    def build_epilogue(self) -> list[str]:
        return [f"mov sp, {SAVED_SP}", "mov x0, x7", "ldp x25, x26, [sp], #16",
                "ldp x21, x22, [sp], #16", "ldp x19, x20, [sp], #16", "ldp x29, x30, [sp], #16", "ret"]

    def build_packet_abort(self, epilogue: str) -> list[str]:
        # LD_ABS/LD_IND out of the packet: the whole program returns 0.
        return ["mov x7, #0", f"b {epilogue}"]

    def build_lddw(self, insn: Insn, index: int, value: int) -> list[str]:
        # LDDW: dst = imm64
        return move_immediate(REGISTER_MAP[insn.dst], value)

    # --- ALU ------------------------------------------------------------------------

    def operand(self, insn: Insn, width: int) -> tuple[list[str], str]:
        """The source operand as a register: src, or the immediate loaded into TMP1."""
        if insn.source == isa.X:
            return [], sized(REGISTER_MAP[insn.src], width)
        value = insn.imm if width == 64 else insn.imm & 0xFFFFFFFF  # K sign-extends for ALU64
        return move_immediate(TMP1, value), sized(TMP1, width)

    def build_alu(self, insn: Insn, index: int) -> list[str] | None:
        width = 64 if insn.klass == isa.ALU64 else 32
        dst64 = REGISTER_MAP[insn.dst]
        dst = sized(dst64, width)
        op = insn.op
        if op == isa.END:
            return self.build_swap(insn, dst64)
        if op == isa.NEG:
            return [f"neg {dst}, {dst}"]
        if op in (isa.LSH, isa.RSH, isa.ARSH) and insn.source == isa.K:
            return [f"{_ALU[op]} {dst}, {dst}, #{insn.imm & (width - 1)}"]
        if op == isa.MOV and insn.off:
            # MOVSX: dst = (s8/s16/s32) src (a 32-bit result zero-extends)
            src = w(REGISTER_MAP[insn.src])
            return [f"{ {8: 'sxtb', 16: 'sxth', 32: 'sxtw'}[insn.off]} {dst}, {src}"]
        if op == isa.MOV:
            if insn.source == isa.K:
                return move_immediate(dst64, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF)
            return [f"mov {dst}, {sized(REGISTER_MAP[insn.src], width)}"]
        setup, src = self.operand(insn, width)
        if op in _ALU:
            # ALU: dst = dst op src (w registers zero-extend; register shifts mask the count)
            return setup + [f"{_ALU[op]} {dst}, {dst}, {src}"]
        if op in (isa.DIV, isa.MOD):
            divide = "sdiv" if insn.off == 1 else "udiv"
            if op == isa.DIV:
                return setup + [f"{divide} {dst}, {dst}, {src}"]
            quotient = sized(TMP2, width)
            return setup + [f"{divide} {quotient}, {dst}, {src}", f"msub {dst}, {quotient}, {src}, {dst}"]
        return None

    def build_swap(self, insn: Insn, dst64: str) -> list[str]:
        """le/be relative to this little-endian host; ALU64|END is an unconditional bswap."""
        width = insn.imm
        swap = insn.klass == isa.ALU64 or insn.source == isa.TO_BE
        if not swap:
            return {16: [f"uxth {w(dst64)}, {w(dst64)}"], 32: [f"mov {w(dst64)}, {w(dst64)}"], 64: []}[width]
        if width == 16:
            return [f"rev16 {w(dst64)}, {w(dst64)}", f"uxth {w(dst64)}, {w(dst64)}"]
        return [f"rev {sized(dst64, width)}, {sized(dst64, width)}"]

    # --- memory ---------------------------------------------------------------------

    def build_load(self, insn: Insn, index: int) -> list[str]:
        # LDX: dst = *(size *)(src + off); MEMSX sign-extends to 64 bits
        size, dst64, base = insn.nbytes, REGISTER_MAP[insn.dst], REGISTER_MAP[insn.src]
        signed = insn.mode == isa.MEMSX
        target = dst64 if size == 8 or signed else w(dst64)
        if -256 <= insn.off <= 255:
            mnemonic = (_LOAD_SIGNED if signed else _LOAD)[size]
            return [f"{mnemonic} {target}, [{base}, #{insn.off}]"]
        mnemonic = (_LOAD_SIGNED_INDEXED if signed else _LOAD_INDEXED)[size]
        return move_immediate(TMP1, insn.off) + [f"{mnemonic} {target}, [{base}, {TMP1}]"]

    def build_store(self, insn: Insn, index: int) -> list[str]:
        # ST: *(size *)(dst + off) = imm (stdw sign-extends); STX: = src
        size, base = insn.nbytes, REGISTER_MAP[insn.dst]
        lines: list[str] = []
        if insn.klass == isa.ST:
            lines += move_immediate(TMP2, insn.imm)
            value = TMP2
        else:
            value = REGISTER_MAP[insn.src]
        value = value if size == 8 else w(value)
        if -256 <= insn.off <= 255:
            return lines + [f"{_STORE[size]} {value}, [{base}, #{insn.off}]"]
        return lines + move_immediate(TMP1, insn.off) + [f"{_STORE_INDEXED[size]} {value}, [{base}, {TMP1}]"]

    def build_atomic(self, insn: Insn, index: int) -> list[str]:
        """Atomics as ldxr/stxr retry loops; fetch forms return the old value in src."""
        width = 8 * insn.nbytes
        address, status = TMP1, w(TMP3)
        old, new = sized(TMP4, width), sized(TMP2, width)
        src = sized(REGISTER_MAP[insn.src], width)
        retry, done, fail = (local_label(index, name) for name in ("retry", "done", "fail"))
        lines = (move_immediate(address, insn.off) + [f"add {address}, {address}, {REGISTER_MAP[insn.dst]}"]
                 if insn.off else [f"mov {address}, {REGISTER_MAP[insn.dst]}"])
        lines.append(f"{retry}:")
        lines.append(f"ldxr {old}, [{address}]")
        if insn.imm == isa.ATOMIC_CMPXCHG:
            # r0 = old; if old == r0 then *ptr = src
            r0 = sized("x7", width)
            return lines + [f"cmp {old}, {r0}", f"b.ne {fail}", f"stxr {status}, {src}, [{address}]",
                            f"cbnz {status}, {retry}", f"b {done}", f"{fail}:", "clrex", f"{done}:",
                            f"mov {r0}, {old}"]
        if insn.imm == isa.ATOMIC_XCHG:
            return lines + [f"stxr {status}, {src}, [{address}]", f"cbnz {status}, {retry}", f"mov {src}, {old}"]
        operation = {isa.ADD: "add", isa.OR: "orr", isa.AND: "and", isa.XOR: "eor"}[insn.imm & ~isa.ATOMIC_FETCH]
        lines += [f"{operation} {new}, {old}, {src}", f"stxr {status}, {new}, [{address}]",
                  f"cbnz {status}, {retry}"]
        if insn.imm & isa.ATOMIC_FETCH:
            lines.append(f"mov {src}, {old}")
        return lines

    def build_packet_load(self, insn: Insn, index: int, abort: str) -> list[str]:
        """LD_ABS/LD_IND: r0 = ntoh(*(size *)(packet + (s32)(imm [+ src]))), else abort with 0."""
        size = insn.nbytes
        lines = move_immediate(TMP1, insn.imm & 0xFFFFFFFF)
        if insn.mode == isa.IND:
            lines.append(f"add {w(TMP1)}, {w(TMP1)}, {w(REGISTER_MAP[insn.src])}")
        lines += [f"sxtw {TMP1}, {w(TMP1)}", f"cmp {TMP1}, #0"]
        lines += self.conditional_branch("lt", abort, local_label(index, "not_negative"))
        lines.append(f"add {TMP2}, {TMP1}, #{size}")
        lines += move_immediate(TMP3, layout.PACKET_LEN_ADDR)
        lines += [f"ldr {TMP3}, [{TMP3}]", f"cmp {TMP2}, {TMP3}"]
        lines += self.conditional_branch("hi", abort, local_label(index, "inside"))
        lines += move_immediate(TMP3, layout.MEM_BASE)
        lines.append(f"add {TMP3}, {TMP3}, {TMP1}")
        if size == 1:
            return lines + [f"ldrb w7, [{TMP3}]"]
        if size == 2:
            return lines + [f"ldrh w7, [{TMP3}]", "rev16 w7, w7"]
        return lines + [f"ldr w7, [{TMP3}]", "rev w7, w7"]

    # --- jumps and calls ----------------------------------------------------------------

    def build_exit(self, insn: Insn, index: int) -> list[str]:
        return ["ret"]  # back to the entry (or the local call site); r0 is x7

    def build_goto(self, insn: Insn, index: int, target: str) -> list[str]:
        return [f"b {target}"]

    def build_branch(self, insn: Insn, index: int, target: str) -> list[str]:
        # if dst cond src: cmp (tst for JSET) sets the flags, b.cond reads them
        width = 64 if insn.klass == isa.JMP else 32
        dst = sized(REGISTER_MAP[insn.dst], width)
        setup, src = self.operand(insn, width)
        compare = "tst" if insn.op == isa.JSET else "cmp"
        return (setup + [f"{compare} {dst}, {src}"]
                + self.conditional_branch(_COND[insn.op], target, local_label(index, "not_taken")))

    def build_local_call(self, insn: Insn, index: int, target: str) -> list[str]:
        # local call: save the link register and r6-r10, give the callee its own frame
        return ["stp x30, x19, [sp, #-16]!", "stp x20, x21, [sp, #-16]!", "stp x22, x25, [sp, #-16]!",
                f"sub x25, x25, #{layout.FRAME_SIZE}", f"bl {target}",
                "ldp x22, x25, [sp], #16", "ldp x20, x21, [sp], #16", "ldp x30, x19, [sp], #16"]

    def build_helper_call(self, insn: Insn, index: int, address: int) -> list[str]:
        # r1-r5 are already x0-x4; the result comes back in x0
        return (["str x30, [sp, #-16]!"] + move_immediate(TMP1, address)
                + [f"blr {TMP1}", "ldr x30, [sp], #16", "mov x7, x0"])
