"""SPARC64 (V9, big-endian) JIT backend: assembly text for keystone, one call per program.

Shape after the kernel's arch/sparc/net/bpf_jit_comp_64.c: the register map at the
top, then ``build_prologue`` / ``build_epilogue`` and one builder per instruction
class for the translation driver (arches/driver.py).

Target facts (DESIGN.md, measured): ``save``/``restore`` trap under Unicorn (no
window spill/fill), so the code is window-free and keeps its own frames on %sp;
every branch and call has an explicit ``nop`` in its delay slot; ``udivx``/
``sdivx`` trap on zero, so divisions are guarded; keystone has no ``stw``/``setx``
(``st`` and sethi/or sequences instead). SPARC traps on misaligned accesses while
eBPF allows them, so a load or store checks the address's alignment at run time
and falls back to byte accesses; packet loads always go byte by byte.
"""
from __future__ import annotations


import capstone
import keystone
import unicorn
from unicorn import sparc_const as us

from arches.driver import AssemblyBackend, local_label
from harness import isa, layout
from harness.isa import Insn

# eBPF register -> SPARC register (the kernel's map, bpf2sparc[] in bpf_jit_comp_64.c).
REGISTER_MAP = {0: "%o5", 1: "%o0", 2: "%o1", 3: "%o2", 4: "%o3", 5: "%o4",
                6: "%l0", 7: "%l1", 8: "%l2", 9: "%l3", 10: "%l6"}
TMP1, TMP2, TMP3, ADDR, CONST = "%g1", "%g2", "%g3", "%g4", "%g5"  # CONST: only load_immediate's helper
SAVED_SP = "%l7"  # the entry stack pointer, for unwinding an out-of-packet LD_ABS

_ALU = {isa.ADD: "add", isa.SUB: "sub", isa.MUL: "mulx", isa.OR: "or", isa.AND: "and", isa.XOR: "xor"}
_SHIFT64 = {isa.LSH: "sllx", isa.RSH: "srlx", isa.ARSH: "srax"}
_SHIFT32 = {isa.LSH: "sll", isa.RSH: "srl", isa.ARSH: "sra"}
_BRANCH = {isa.JEQ: "be", isa.JNE: "bne", isa.JGT: "bgu", isa.JGE: "bgeu", isa.JLT: "blu", isa.JLE: "bleu",
           isa.JSGT: "bg", isa.JSGE: "bge", isa.JSLT: "bl", isa.JSLE: "ble", isa.JSET: "bne"}
_INVERSE = {"be": "bne", "bne": "be", "bgu": "bleu", "bleu": "bgu", "bgeu": "blu", "blu": "bgeu",
            "bg": "ble", "ble": "bg", "bge": "bl", "bl": "bge"}
_LOAD = {1: "ldub", 2: "lduh", 4: "lduw", 8: "ldx"}
_LOAD_SIGNED = {1: "ldsb", 2: "ldsh", 4: "ldsw"}
_STORE = {1: "stb", 2: "sth", 4: "st", 8: "stx"}


def load_immediate(register: str, value: int) -> list[str]:
    """mov simm13 / sethi+or (+ sra to sign-extend) / the two-half 64-bit sequence via %g5."""
    value &= (1 << 64) - 1
    signed = value - (1 << 64) if value >> 63 else value
    if -4096 <= signed < 4096:
        return [f"mov {signed}, {register}"]

    def low32(target: str, word: int) -> list[str]:
        lines = [f"sethi {word >> 10:#x}, {target}"]
        if word & 0x3FF:
            lines.append(f"or {target}, {word & 0x3FF:#x}, {target}")
        return lines

    if 0 <= signed < (1 << 32):
        return low32(register, value)
    if -(1 << 31) <= signed < 0:
        return low32(register, value & 0xFFFFFFFF) + [f"sra {register}, 0, {register}"]
    assert register != CONST
    return (low32(register, value >> 32) + [f"sllx {register}, 32, {register}"]
            + low32(CONST, value & 0xFFFFFFFF) + [f"or {register}, {CONST}, {register}"])


class Sparc64Backend(AssemblyBackend):
    name = "sparc64"
    byte_order = "big"
    uc_arch, uc_mode = unicorn.UC_ARCH_SPARC, unicorn.UC_MODE_SPARC64 | unicorn.UC_MODE_BIG_ENDIAN
    cs_arch, cs_mode = capstone.CS_ARCH_SPARC, capstone.CS_MODE_V9 | capstone.CS_MODE_BIG_ENDIAN
    ks_arch, ks_mode = keystone.KS_ARCH_SPARC, keystone.KS_MODE_SPARC64 | keystone.KS_MODE_BIG_ENDIAN
    short_branch_reach = 1 << 20  # bpcc: disp19 words (SPARC V9 manual, A.4); keystone truncates beyond
    register_map = REGISTER_MAP
    argument_registers = (us.UC_SPARC_REG_O0, us.UC_SPARC_REG_O1, us.UC_SPARC_REG_O2,
                          us.UC_SPARC_REG_O3, us.UC_SPARC_REG_O4)
    return_register = us.UC_SPARC_REG_O0  # helpers return in %o0; the epilogue copies %o5 there
    stack_pointer = us.UC_SPARC_REG_SP
    program_counter = us.UC_SPARC_REG_PC
    general_registers = tuple(getattr(us, f"UC_SPARC_REG_{bank}{n}") for bank in "GOLI" for n in range(8)
                              if (bank, n) not in (("G", 0), ("O", 6)))
    # Scratch across a call (see callee_saved below): %o0-%o5 and %g1-%g5 (%o7 holds the
    # return address the stub's retl uses).
    caller_saved_registers = tuple(getattr(us, f"UC_SPARC_REG_{name}") for name in (
        "G1", "G2", "G3", "G4", "G5", "O0", "O1", "O2", "O3", "O4", "O5"))
    # The window-free frame model (save/restore trap under Unicorn) promises what a SPARC leaf
    # routine that never executes save promises: it runs in its caller's window, so it leaves the
    # caller's %l0-%l7 and %i0-%i7 (which save/restore would have kept) and %sp as they were, and
    # never touches the system registers %g6-%g7; %o0-%o5, %o7 and %g1-%g5 are scratch (%g5 is
    # free in the 64-bit ABI).
    callee_saved = {f"%{bank}{n}": getattr(us, f"UC_SPARC_REG_{bank.upper()}{n}")
                    for bank, numbers in (("l", range(8)), ("i", range(8)), ("g", (6, 7))) for n in numbers}
    callee_saved_source = "SPARC Compliance Definition 2.4 (64-bit SPARC V9 ABI), leaf routines"
    helper_stub = bytes.fromhex("81c3e008" "01000000")  # retl; nop
    instruction_width = 4
    sentinel_fill = bytes.fromhex("01000000")  # nop
    supports_count = False  # Unicorn's count= misbehaves after delayed branches (DESIGN.md)

    def listing_for_keystone(self, mnemonic: str, operands: str, address: int) -> str:
        """keystone 0.9.2 reads numeric targets three ways (measured): ``ba``/Bicc take the
        absolute address, BPcc (``be %xcc, N``) the word displacement, and ``call N``
        encodes N - address without dividing by 4."""
        parts = operands.split(", ")
        try:
            target = int(parts[-1], 0)
        except ValueError:
            return f"{mnemonic} {operands}"
        if mnemonic == "call":
            return f"call {address + (target - address) // 4:#x}"
        if mnemonic.startswith("b") and len(parts) == 2 and parts[0] in ("%xcc", "%icc"):
            return f"{mnemonic} {parts[0]}, {(target - address) // 4}"
        return f"{mnemonic} {operands}"

    def set_return_address(self, uc, address: int) -> None:
        uc.reg_write(us.UC_SPARC_REG_O7, address - 8)  # retl returns to %o7 + 8

    # --- translation ------------------------------------------------------------------

    # The caller's %l registers this code uses are saved in the entry frame and restored (the frame
    # model's promise, see callee_saved); %o7 is the return address.
    SAVED = [(register, 8 * (slot + 1)) for slot, register in enumerate(["%l0", "%l1", "%l2", "%l3", "%l6", SAVED_SP])]

    def build_prologue(self, body: str) -> list[str]:
        return (["sub %sp, 64, %sp", "stx %o7, [%sp]"] + [f"stx {register}, [%sp + {offset}]" for register, offset in self.SAVED]
                + [f"mov %sp, {SAVED_SP}"] + load_immediate("%l6", layout.STACK_TOP) + [f"call {body}", "nop"])

    def build_epilogue(self) -> list[str]:
        return ([f"mov {SAVED_SP}, %sp", "mov %o5, %o0", "ldx [%sp], %o7"]
                + [f"ldx [%sp + {offset}], {register}" for register, offset in self.SAVED]
                + ["add %sp, 64, %sp", "retl", "nop"])

    def build_packet_abort(self, epilogue: str) -> list[str]:
        # LD_ABS/LD_IND out of the packet: the whole program returns 0 (the delay slot clears r0). In
        # far mode `call` (disp30) reaches where `ba` (disp22: +-8 MiB) may not: the epilogue reloads %o7.
        return [f"{'call' if self.far_branches else 'ba'} {epilogue}", "mov 0, %o5"]

    def build_lddw(self, insn: Insn, index: int, value: int) -> list[str]:
        # LDDW: dst = imm64
        return load_immediate(REGISTER_MAP[insn.dst], value)

    # --- ALU --------------------------------------------------------------------------

    def source(self, insn: Insn, width: int) -> tuple[list[str], str]:
        if insn.source == isa.X:
            return [], REGISTER_MAP[insn.src]
        return load_immediate(TMP1, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF), TMP1

    def build_alu(self, insn: Insn, index: int) -> list[str] | None:
        width = 64 if insn.klass == isa.ALU64 else 32
        dst = REGISTER_MAP[insn.dst]
        zext = [f"srl {dst}, 0, {dst}"] if width == 32 else []  # ALU32 zero-extends
        op = insn.op
        if op == isa.END:
            return self.build_swap(insn, dst)
        if op == isa.NEG:
            return [f"sub %g0, {dst}, {dst}"] + zext
        if op == isa.MOV:
            src = REGISTER_MAP[insn.src]
            if insn.off:  # MOVSX: dst = (s8/s16/s32) src
                shift = 64 - insn.off
                return [f"sllx {src}, {shift}, {dst}", f"srax {dst}, {shift}, {dst}"] + zext
            if insn.source == isa.K:
                return load_immediate(dst, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF)
            return [f"srl {src}, 0, {dst}"] if width == 32 else [f"mov {src}, {dst}"]
        setup, src = self.source(insn, width)
        if op in _ALU:
            return setup + [f"{_ALU[op]} {dst}, {src}, {dst}"] + zext
        if op in _SHIFT64:
            mnemonic = _SHIFT64[op] if width == 64 else _SHIFT32[op]
            return setup + [f"and {src}, {width - 1}, {TMP2}", f"{mnemonic} {dst}, {TMP2}, {dst}"] + zext
        if op in (isa.DIV, isa.MOD):
            return setup + self.build_divide(insn, index, width, dst, src)
        return None

    def build_divide(self, insn: Insn, index: int, width: int, dst: str, src: str) -> list[str]:
        """udivx/sdivx guarded: by 0, div -> 0 and mod -> dst; a 64-bit signed divide by -1 negates.

        32-bit forms extend both operands to 64 bits first (zero- or sign-), where
        INT_MIN / -1 cannot overflow.
        """
        signed, is_mod = insn.off == 1, insn.op == isa.MOD
        zero, done = local_label(index, "zero"), local_label(index, "done")
        a, b = TMP2, TMP3
        extend = "sra" if signed else "srl"
        lines = ([f"{extend} {dst}, 0, {a}", f"{extend} {src}, 0, {b}"] if width == 32
                 else [f"mov {dst}, {a}", f"mov {src}, {b}"])
        lines += [f"cmp {b}, 0", f"be %xcc, {zero}", "nop"]
        if signed and width == 64:
            regular = local_label(index, "divide")
            lines += [f"cmp {b}, -1", f"bne %xcc, {regular}", "nop",
                      f"mov 0, {dst}" if is_mod else f"sub %g0, {dst}, {dst}", f"ba {done}", "nop", f"{regular}:"]
        divide = "sdivx" if signed else "udivx"
        if is_mod:
            lines += [f"{divide} {a}, {b}, {TMP1}", f"mulx {TMP1}, {b}, {TMP1}", f"sub {a}, {TMP1}, {dst}"]
        else:
            lines += [f"{divide} {a}, {b}, {dst}"]
        zext = [f"srl {dst}, 0, {dst}"] if width == 32 else []
        lines += zext + [f"ba {done}", "nop", f"{zero}:"]
        lines += zext if is_mod else [f"mov 0, {dst}"]
        return lines + [f"{done}:"]

    def build_swap(self, insn: Insn, dst: str) -> list[str]:
        """be truncates on this big-endian host; le and bswap reverse the bytes with shifts."""
        width = insn.imm
        swap = insn.klass == isa.ALU64 or insn.source == isa.TO_LE
        if not swap:
            return {16: [f"sllx {dst}, 48, {dst}", f"srlx {dst}, 48, {dst}"],
                    32: [f"srl {dst}, 0, {dst}"], 64: []}[width]
        count = width // 8
        lines = [f"mov 0, {TMP2}"]
        for byte in range(count):  # result |= ((dst >> 8*byte) & 0xff) << 8*(count-1-byte)
            lines += [f"srlx {dst}, {8 * byte}, {TMP1}", f"and {TMP1}, 0xff, {TMP1}",
                      f"sllx {TMP1}, {8 * (count - 1 - byte)}, {TMP1}", f"or {TMP2}, {TMP1}, {TMP2}"]
        return lines + [f"mov {TMP2}, {dst}"]

    # --- memory -----------------------------------------------------------------------

    def effective_address(self, base: str, offset: int) -> list[str]:
        if -4096 <= offset < 4096:
            return [f"add {base}, {offset}, {ADDR}"]
        return load_immediate(ADDR, offset) + [f"add {ADDR}, {base}, {ADDR}"]

    def bytewise_load(self, size: int, target: str, signed: bool) -> list[str]:
        """Big-endian composition of ``size`` bytes at ADDR (any alignment)."""
        lines = [f"ldub [{ADDR}], {target}"]
        for byte in range(1, size):
            lines += [f"ldub [{ADDR} + {byte}], {TMP1}", f"sllx {target}, 8, {target}", f"or {target}, {TMP1}, {target}"]
        if signed and size < 8:
            shift = 64 - 8 * size
            lines += [f"sllx {target}, {shift}, {target}", f"srax {target}, {shift}, {target}"]
        return lines

    def build_load(self, insn: Insn, index: int) -> list[str]:
        # LDX: dst = *(size *)(src + off); MEMSX sign-extends
        size, dst = insn.nbytes, REGISTER_MAP[insn.dst]
        signed = insn.mode == isa.MEMSX
        mnemonic = (_LOAD_SIGNED if signed else _LOAD)[size]
        lines = self.effective_address(REGISTER_MAP[insn.src], insn.off)
        if size == 1:
            return lines + [f"{mnemonic} [{ADDR}], {dst}"]
        unaligned, done = local_label(index, "unaligned"), local_label(index, "loaded")
        return (lines + [f"andcc {ADDR}, {size - 1}, %g0", f"bne %xcc, {unaligned}", "nop",
                         f"{mnemonic} [{ADDR}], {dst}", f"ba {done}", "nop", f"{unaligned}:"]
                + self.bytewise_load(size, dst, signed) + [f"{done}:"])

    def build_store(self, insn: Insn, index: int) -> list[str]:
        # ST: *(size *)(dst + off) = imm (stdw sign-extends); STX: = src
        size = insn.nbytes
        lines = self.effective_address(REGISTER_MAP[insn.dst], insn.off)
        if insn.klass == isa.ST:
            lines += load_immediate(TMP3, insn.imm)
            value = TMP3
        else:
            value = REGISTER_MAP[insn.src]
        if size == 1:
            return lines + [f"stb {value}, [{ADDR}]"]
        unaligned, done = local_label(index, "unaligned"), local_label(index, "stored")
        lines += [f"andcc {ADDR}, {size - 1}, %g0", f"bne %xcc, {unaligned}", "nop",
                  f"{_STORE[size]} {value}, [{ADDR}]", f"ba {done}", "nop", f"{unaligned}:"]
        for byte in range(size):  # most significant byte first (big endian)
            where = f"[{ADDR} + {byte}]" if byte else f"[{ADDR}]"
            lines += [f"srlx {value}, {8 * (size - 1 - byte)}, {TMP1}", f"stb {TMP1}, {where}"]
        return lines + [f"{done}:"]

    def build_atomic(self, insn: Insn, index: int) -> list[str]:
        """cas/casx: cmpxchg directly, everything else as a compare-and-swap retry loop."""
        wide = insn.nbytes == 8
        cas, load, cc = ("casx", "ldx", "%xcc") if wide else ("cas", "lduw", "%icc")
        src = REGISTER_MAP[insn.src]
        lines = self.effective_address(REGISTER_MAP[insn.dst], insn.off)
        if insn.imm == isa.ATOMIC_CMPXCHG:
            # r0 = old; if old == r0 then *ptr = src (cas leaves the old value in its rd)
            return lines + [f"mov {src}, {TMP2}", f"{cas} [{ADDR}], %o5, {TMP2}", f"mov {TMP2}, %o5"]
        retry = local_label(index, "retry")
        old, new = TMP1, TMP2
        lines += [f"{retry}:", f"{load} [{ADDR}], {old}"]
        if insn.imm == isa.ATOMIC_XCHG:
            lines.append(f"mov {src}, {new}")
        else:
            operation = {isa.ADD: "add", isa.OR: "or", isa.AND: "and", isa.XOR: "xor"}[insn.imm & ~isa.ATOMIC_FETCH]
            lines.append(f"{operation} {old}, {src}, {new}")
        lines += [f"{cas} [{ADDR}], {old}, {new}", f"cmp {old}, {new}", f"bne {cc}, {retry}", "nop"]
        if insn.imm & isa.ATOMIC_FETCH:  # includes xchg
            lines.append(f"mov {old}, {src}")
        return lines

    def build_packet_load(self, insn: Insn, index: int, abort: str) -> list[str]:
        """LD_ABS/LD_IND: r0 = big-endian bytes at packet + (s32)(imm [+ src]), else abort with 0."""
        size = insn.nbytes
        lines = load_immediate(TMP2, insn.imm & 0xFFFFFFFF)
        if insn.mode == isa.IND:
            lines.append(f"add {TMP2}, {REGISTER_MAP[insn.src]}, {TMP2}")
        lines += [f"sra {TMP2}, 0, {TMP2}", f"cmp {TMP2}, 0"]
        lines += self.conditional_branch("bl", "%xcc", abort, local_label(index, "not_negative"))
        lines.append(f"add {TMP2}, {size}, {TMP3}")
        lines += load_immediate(ADDR, layout.PACKET_LEN_ADDR)
        lines += [f"ldx [{ADDR}], {ADDR}", f"cmp {TMP3}, {ADDR}"]
        lines += self.conditional_branch("bgu", "%xcc", abort, local_label(index, "inside"))
        lines += load_immediate(ADDR, layout.MEM_BASE) + [f"add {ADDR}, {TMP2}, {ADDR}"]
        return lines + self.bytewise_load(size, "%o5", False)

    # --- jumps and calls ------------------------------------------------------------------

    def build_exit(self, insn: Insn, index: int) -> list[str]:
        return ["retl", "nop"]  # back to the entry (or the local call site); r0 is %o5

    def build_goto(self, insn: Insn, index: int, target: str) -> list[str]:
        return self.far_jump(target) if self.far_branches else [f"ba {target}", "nop"]

    @staticmethod
    def far_jump(target: str) -> list[str]:
        """A jump anywhere in the code: ``call`` (disp30 words, +-2 GiB) with %o7 kept through TMP1.

        ``ba`` reaches +-8 MiB, less than a program of 1,000,000 instructions may take (15 MiB for
        harness/tools/long_program.py's); ``call`` writes %o7 before its delay slot runs, which
        puts the caller's %o7 back, so a later ``retl`` still returns where it should.
        """
        return [f"mov %o7, {TMP1}", f"call {target}", f"mov {TMP1}, %o7"]

    def build_branch(self, insn: Insn, index: int, target: str) -> list[str]:
        # if dst cond src: cmp (andcc for JSET) sets %xcc/%icc, the branch reads them
        width = 64 if insn.klass == isa.JMP else 32
        dst = REGISTER_MAP[insn.dst]
        setup, src = self.source(insn, width)
        test = f"andcc {dst}, {src}, %g0" if insn.op == isa.JSET else f"cmp {dst}, {src}"
        cc = "%xcc" if width == 64 else "%icc"
        return setup + [test] + self.conditional_branch(_BRANCH[insn.op], cc, target,
                                                        local_label(index, "not_taken"))

    def conditional_branch(self, mnemonic: str, cc: str, target: str, skip: str) -> list[str]:
        """bpcc to ``target``; in far mode the inverted bpcc over a far jump to label ``skip``."""
        if not self.far_branches:
            return [f"{mnemonic} {cc}, {target}", "nop"]
        return [f"{_INVERSE[mnemonic]} {cc}, {skip}", "nop", *self.far_jump(target), f"{skip}:"]

    def build_local_call(self, insn: Insn, index: int, target: str) -> list[str]:
        # local call: save %o7 and r6-r10, give the callee its own frame
        saved = ["%o7", "%l0", "%l1", "%l2", "%l3", "%l6"]
        slot = lambda n: f"[%sp + {8 * n}]" if n else "[%sp]"  # noqa: E731 (keystone's own form)
        return (["sub %sp, 48, %sp"] + [f"stx {r}, {slot(n)}" for n, r in enumerate(saved)]
                + [f"sub %l6, {layout.FRAME_SIZE}, %l6", f"call {target}", "nop"]
                + [f"ldx {slot(n)}, {r}" for n, r in enumerate(saved)] + ["add %sp, 48, %sp"])

    def build_helper_call(self, insn: Insn, index: int, address: int) -> list[str]:
        # r1-r5 are already %o0-%o4; the result comes back in %o0
        return (["sub %sp, 16, %sp", "stx %o7, [%sp]"] + load_immediate(TMP1, address)
                + [f"jmpl {TMP1}, %o7", "nop", "ldx [%sp], %o7", "add %sp, 16, %sp", "mov %o0, %o5"])
