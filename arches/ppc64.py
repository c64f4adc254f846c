"""PowerPC64 (big-endian) JIT backend: assembly text for keystone, one call per program.

Shape after the kernel's arch/powerpc/net/bpf_jit_comp64.c: the register map at
the top, then ``build_prologue`` / ``build_epilogue`` and one builder per
instruction class for the translation driver (arches/driver.py).

Target facts (DESIGN.md, measured; the last one found by the fuzzer): ``or N, N, N`` is a
priority hint that makes Unicorn/QEMU pause (emulation stops), so it is never emitted; only Unicorn's default CPU model with the
virtual TLB runs 64-bit code; keystone can fail silently (the shared
``keystone_assemble`` checks the count); ``ld``/``std``/``lwa`` offsets must be
multiples of 4 (indexed forms otherwise); ``divdu`` by zero returns garbage and
``divd`` INT_MIN / -1 is undefined, so both are guarded; ``sld``/``slw`` use one
more count bit than the ISA, so counts are masked. Conditional branches reach
only +-32 KB: each is an inverted ``bc`` over an unconditional ``b`` (+-32 MB).
"""
from __future__ import annotations


import capstone
import keystone
import unicorn
from unicorn import ppc_const as up

from arches.driver import AssemblyBackend, local_label
from harness import isa, layout
from harness.isa import Insn

# eBPF register -> PowerPC GPR (the kernel's map, b2p[] in bpf_jit_comp64.c); r1 is the stack pointer.
REGISTER_MAP = {0: "8", 1: "3", 2: "4", 3: "5", 4: "6", 5: "7", 6: "27", 7: "28", 8: "29", 9: "30", 10: "31"}
TMP1, TMP2, TMP3, TMP4 = "9", "10", "11", "12"
SAVED_SP = "26"  # the entry stack pointer, for unwinding an out-of-packet LD_ABS
FRAME = 64  # entry save area: LR, r26-r31
_ENTRY_SAVED = ("26", "27", "28", "29", "30", "31")

_ALU64 = {isa.ADD: "add", isa.OR: "or", isa.AND: "and", isa.XOR: "xor", isa.MUL: "mulld"}
_SHIFT64 = {isa.LSH: "sld", isa.RSH: "srd", isa.ARSH: "srad"}
_SHIFT32 = {isa.LSH: "slw", isa.RSH: "srw", isa.ARSH: "sraw"}
# eBPF condition -> (branch taken, inverted branch, signed compare?)
_COND = {isa.JEQ: ("beq", "bne", False), isa.JNE: ("bne", "beq", False), isa.JGT: ("bgt", "ble", False),
         isa.JGE: ("bge", "blt", False), isa.JLT: ("blt", "bge", False), isa.JLE: ("ble", "bgt", False),
         isa.JSGT: ("bgt", "ble", True), isa.JSGE: ("bge", "blt", True), isa.JSLT: ("blt", "bge", True),
         isa.JSLE: ("ble", "bgt", True), isa.JSET: ("bne", "beq", False)}
_LOAD = {1: "lbz", 2: "lhz", 4: "lwz", 8: "ld"}
_LOAD_SIGNED = {2: "lha", 4: "lwa"}
_STORE = {1: "stb", 2: "sth", 4: "stw", 8: "std"}
_DS_FORM = {"ld", "lwa", "std"}  # offsets must be multiples of 4


def load_immediate(register: str, value: int) -> list[str]:
    """li / lis+ori / the five-instruction 64-bit sequence."""
    value &= (1 << 64) - 1
    signed = value - (1 << 64) if value >> 63 else value
    if -0x8000 <= signed < 0x8000:
        return [f"li {register}, {signed}"]
    if -0x80000000 <= signed < 0x80000000:
        return [f"lis {register}, {isa.to_s32(signed) >> 16}", f"ori {register}, {register}, {signed & 0xFFFF}"]
    return [f"lis {register}, {isa.to_s32((value >> 32) & 0xFFFFFFFF) >> 16}",
            f"ori {register}, {register}, {(value >> 32) & 0xFFFF}", f"sldi {register}, {register}, 32",
            f"oris {register}, {register}, {(value >> 16) & 0xFFFF}", f"ori {register}, {register}, {value & 0xFFFF}"]


class Ppc64Backend(AssemblyBackend):
    name = "ppc64"
    byte_order = "big"
    longest_branch_reach = 1 << 25  # b: LI, 24 bits of words (Power ISA 3.0, "Branch"): +-32 MiB
    uc_arch, uc_mode = unicorn.UC_ARCH_PPC, unicorn.UC_MODE_PPC64 | unicorn.UC_MODE_BIG_ENDIAN
    uc_cpu = None  # the named PPC64 models trap on 64-bit instructions (DESIGN.md)
    cs_arch, cs_mode = capstone.CS_ARCH_PPC, capstone.CS_MODE_64 | capstone.CS_MODE_BIG_ENDIAN
    ks_arch, ks_mode = keystone.KS_ARCH_PPC, keystone.KS_MODE_PPC64 | keystone.KS_MODE_BIG_ENDIAN
    register_map = {number: f"r{name}" for number, name in REGISTER_MAP.items()}
    argument_registers = (up.UC_PPC_REG_3, up.UC_PPC_REG_4, up.UC_PPC_REG_5, up.UC_PPC_REG_6, up.UC_PPC_REG_7)
    return_register = up.UC_PPC_REG_3  # ELFv2: helpers return in r3; the epilogue copies r8 there
    stack_pointer = up.UC_PPC_REG_1
    program_counter = up.UC_PPC_REG_PC
    general_registers = tuple(getattr(up, f"UC_PPC_REG_{n}") for n in range(32) if n != 1)
    # 64-bit ELF V2 ABI, section 2.2.1.1: r0 and r3-r12 are volatile (r2, the TOC, is not).
    caller_saved_registers = tuple(getattr(up, f"UC_PPC_REG_{n}") for n in (0, *range(3, 13)))
    # Nonvolatile: r14-r31, the TOC pointer r2, the thread pointer r13 (reserved: never changed),
    # condition register fields cr2-cr4 and f14-f31 (r1, the stack pointer, is checked as such).
    callee_saved = {**{f"r{n}": getattr(up, f"UC_PPC_REG_{n}") for n in (2, 13, *range(14, 32))},
                    **{f"cr{n}": getattr(up, f"UC_PPC_REG_CR{n}") for n in (2, 3, 4)},
                    **{f"f{n}": getattr(up, f"UC_PPC_REG_FPR{n}") for n in range(14, 32)}}
    callee_saved_source = "64-Bit ELF V2 ABI Specification (OpenPOWER) 1.5, section 2.2.1.1"
    helper_stub = bytes.fromhex("4e800020")  # blr
    instruction_width = 4
    sentinel_fill = bytes.fromhex("60000000")  # nop

    def configure_engine(self, uc) -> None:
        uc.ctl_set_tlb_mode(unicorn.UC_TLB_VIRTUAL)  # 64-bit loads/stores need it (DESIGN.md)

    def set_return_address(self, uc, address: int) -> None:
        uc.reg_write(up.UC_PPC_REG_LR, address)

    def disassembler(self):
        engine = super().disassembler()
        engine.syntax = capstone.CS_OPT_SYNTAX_NOREGNAME  # bare register numbers, as keystone reads them
        return engine

    # --- translation ----------------------------------------------------------------

    def build_prologue(self, body: str) -> list[str]:
        return (["mflr 0", f"addi 1, 1, -{FRAME}", "std 0, 0(1)"]
                + [f"std {register}, {8 * (n + 1)}(1)" for n, register in enumerate(_ENTRY_SAVED)]
                + [f"mr {SAVED_SP}, 1"] + load_immediate("31", layout.STACK_TOP) + [f"bl {body}"])

    def build_epilogue(self) -> list[str]:
        return ([f"mr 1, {SAVED_SP}", "mr 3, 8", "ld 0, 0(1)", "mtlr 0"]
                + [f"ld {register}, {8 * (n + 1)}(1)" for n, register in enumerate(_ENTRY_SAVED)]
                + [f"addi 1, 1, {FRAME}", "blr"])

    def build_packet_abort(self, epilogue: str) -> list[str]:
        # LD_ABS/LD_IND out of the packet: the whole program returns 0.
        return ["li 8, 0", f"b {epilogue}"]

    def build_lddw(self, insn: Insn, index: int, value: int) -> list[str]:
        # LDDW: dst = imm64
        return load_immediate(REGISTER_MAP[insn.dst], value)

    # --- ALU ------------------------------------------------------------------------

    def source(self, insn: Insn, width: int) -> tuple[list[str], str]:
        if insn.source == isa.X:
            return [], REGISTER_MAP[insn.src]
        return load_immediate(TMP1, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF), TMP1

    def build_alu(self, insn: Insn, index: int) -> list[str] | None:
        width = 64 if insn.klass == isa.ALU64 else 32
        dst = REGISTER_MAP[insn.dst]
        zext = [f"clrldi {dst}, {dst}, 32"] if width == 32 else []  # ALU32 zero-extends
        op = insn.op
        if op == isa.END:
            return self.build_swap(insn, dst)
        if op == isa.NEG:
            return [f"neg {dst}, {dst}"] + zext
        if op == isa.MOV:
            if insn.off:  # MOVSX: dst = (s8/s16/s32) src
                extend = {8: "extsb", 16: "extsh", 32: "extsw"}[insn.off]
                return [f"{extend} {dst}, {REGISTER_MAP[insn.src]}"] + zext
            if insn.source == isa.K:
                return load_immediate(dst, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF)
            if width == 32:
                return [f"clrldi {dst}, {REGISTER_MAP[insn.src]}, 32"]
            # never "or N, N, N": QEMU treats several of those as priority hints that pause the CPU
            return [] if insn.src == insn.dst else [f"mr {dst}, {REGISTER_MAP[insn.src]}"]
        setup, src = self.source(insn, width)
        if op == isa.OR and src == dst:  # x | x == x; and "or N, N, N" would pause the CPU
            return zext
        if op in _ALU64:
            return setup + [f"{_ALU64[op]} {dst}, {dst}, {src}"] + zext
        if op == isa.SUB:
            return setup + [f"subf {dst}, {src}, {dst}"] + zext
        if op in _SHIFT64:
            # the hardware reads one more count bit than the ISA: mask explicitly
            if width == 64:
                return setup + [f"andi. {TMP2}, {src}, 63", f"{_SHIFT64[op]} {dst}, {dst}, {TMP2}"]
            return setup + [f"andi. {TMP2}, {src}, 31", f"{_SHIFT32[op]} {dst}, {dst}, {TMP2}"] + zext
        if op in (isa.DIV, isa.MOD):
            return setup + self.build_divide(insn, index, width, dst, src)
        return None

    def build_divide(self, insn: Insn, index: int, width: int, dst: str, src: str) -> list[str]:
        """div by 0 -> 0, mod by 0 -> dst; signed by -1: negate / 0 (divd would be undefined)."""
        signed, is_mod = insn.off == 1, insn.op == isa.MOD
        suffix = "d" if width == 64 else "w"
        compare = f"cmp{suffix}i"
        zext = [f"clrldi {dst}, {dst}, 32"] if width == 32 else []
        zero, done, regular = (local_label(index, name) for name in ("zero", "done", "divide"))
        lines = [f"{compare} {src}, 0", f"beq {zero}"]
        if signed:
            lines += [f"{compare} {src}, -1", f"bne {regular}",
                      f"li {dst}, 0" if is_mod else f"neg {dst}, {dst}"] + zext + [f"b {done}"]
        divide = f"div{suffix}{'' if signed else 'u'}"
        multiply = "mulld" if width == 64 else "mullw"
        lines.append(f"{regular}:")
        if is_mod:
            lines += [f"{divide} {TMP3}, {dst}, {src}", f"{multiply} {TMP3}, {TMP3}, {src}",
                      f"subf {dst}, {TMP3}, {dst}"]
        else:
            lines.append(f"{divide} {dst}, {dst}, {src}")
        lines += zext + [f"b {done}", f"{zero}:"]
        lines += (zext if is_mod else [f"li {dst}, 0"])
        return lines + [f"{done}:"]

    def build_swap(self, insn: Insn, dst: str) -> list[str]:
        """be is a truncation on this big-endian host; le and bswap reverse through memory (st*brx)."""
        width = insn.imm
        swap = insn.klass == isa.ALU64 or insn.source == isa.TO_LE
        if not swap:
            return {16: [f"clrldi {dst}, {dst}, 48"], 32: [f"clrldi {dst}, {dst}, 32"], 64: []}[width]
        store, load = {16: ("sthbrx", "lhz"), 32: ("stwbrx", "lwz"), 64: ("stdbrx", "ld")}[width]
        # a red-zone scratch slot below the native stack pointer
        return [f"addi {TMP2}, 1, -16", f"{store} {dst}, 0, {TMP2}", f"{load} {dst}, 0({TMP2})"]

    # --- memory ---------------------------------------------------------------------

    def address(self, mnemonic: str, base: str, offset: int) -> tuple[list[str], str, bool]:
        """(setup, operand, indexed): d(rA) when the offset fits, else rA, TMP4 for the x-form."""
        fits = -0x8000 <= offset < 0x8000 and (mnemonic not in _DS_FORM or offset % 4 == 0)
        if fits:
            return [], f"{offset}({base})", False
        return load_immediate(TMP4, offset), f"{base}, {TMP4}", True

    def build_load(self, insn: Insn, index: int) -> list[str]:
        # LDX: dst = *(size *)(src + off); MEMSX sign-extends (lbz + extsb for bytes)
        size, dst, base = insn.nbytes, REGISTER_MAP[insn.dst], REGISTER_MAP[insn.src]
        signed = insn.mode == isa.MEMSX
        mnemonic = _LOAD_SIGNED[size] if signed and size > 1 else _LOAD[size]
        setup, operand, indexed = self.address(mnemonic, base, insn.off)
        lines = setup + [f"{mnemonic}{'x' if indexed else ''} {dst}, {operand}"]
        if signed and size == 1:
            lines.append(f"extsb {dst}, {dst}")
        return lines

    def build_store(self, insn: Insn, index: int) -> list[str]:
        # ST: *(size *)(dst + off) = imm (stdw sign-extends); STX: = src
        size, base = insn.nbytes, REGISTER_MAP[insn.dst]
        lines: list[str] = []
        if insn.klass == isa.ST:
            lines = load_immediate(TMP2, insn.imm)
            value = TMP2
        else:
            value = REGISTER_MAP[insn.src]
        mnemonic = _STORE[size]
        setup, operand, indexed = self.address(mnemonic, base, insn.off)
        return lines + setup + [f"{mnemonic}{'x' if indexed else ''} {value}, {operand}"]

    def build_atomic(self, insn: Insn, index: int) -> list[str]:
        """larx/stcx. retry loops; fetch forms return the old value in src."""
        reserve, conditional = ("ldarx", "stdcx.") if insn.nbytes == 8 else ("lwarx", "stwcx.")
        src, old, new = REGISTER_MAP[insn.src], TMP4, TMP2
        retry, fail = local_label(index, "retry"), local_label(index, "fail")
        lines = load_immediate(TMP1, insn.off) + [f"add {TMP1}, {TMP1}, {REGISTER_MAP[insn.dst]}",
                                                  f"{retry}:", f"{reserve} {old}, 0, {TMP1}"]
        if insn.imm == isa.ATOMIC_CMPXCHG:
            compare = "cmpd" if insn.nbytes == 8 else "cmpw"
            return lines + [f"{compare} {old}, 8", f"bne {fail}", f"{conditional} {src}, 0, {TMP1}",
                            f"bne- {retry}", f"{fail}:", f"mr 8, {old}"]
        if insn.imm == isa.ATOMIC_XCHG:
            return lines + [f"{conditional} {src}, 0, {TMP1}", f"bne- {retry}", f"mr {src}, {old}"]
        operation = {isa.ADD: "add", isa.OR: "or", isa.AND: "and", isa.XOR: "xor"}[insn.imm & ~isa.ATOMIC_FETCH]
        lines += [f"{operation} {new}, {old}, {src}", f"{conditional} {new}, 0, {TMP1}", f"bne- {retry}"]
        if insn.imm & isa.ATOMIC_FETCH:
            lines.append(f"mr {src}, {old}")  # lwarx zero-extends the 32-bit old value
        return lines

    def build_packet_load(self, insn: Insn, index: int, abort: str) -> list[str]:
        """LD_ABS/LD_IND: r0 = *(size *)(packet + (s32)(imm [+ src])) (already network order)."""
        size = insn.nbytes
        lines = load_immediate(TMP1, insn.imm & 0xFFFFFFFF)
        if insn.mode == isa.IND:
            lines.append(f"add {TMP1}, {TMP1}, {REGISTER_MAP[insn.src]}")
        positive, inside = local_label(index, "positive"), local_label(index, "inside")
        lines += [f"extsw {TMP1}, {TMP1}", f"cmpdi {TMP1}, 0", f"bge {positive}", f"b {abort}",
                  f"{positive}:", f"addi {TMP2}, {TMP1}, {size}"]
        lines += load_immediate(TMP3, layout.PACKET_LEN_ADDR)
        lines += [f"ld {TMP3}, 0({TMP3})", f"cmpld {TMP2}, {TMP3}", f"ble {inside}", f"b {abort}", f"{inside}:"]
        lines += load_immediate(TMP3, layout.MEM_BASE)
        return lines + [f"{_LOAD[size]}x 8, {TMP3}, {TMP1}"]

    # --- jumps and calls -----------------------------------------------------------------

    def build_exit(self, insn: Insn, index: int) -> list[str]:
        return ["blr"]  # back to the entry (or the local call site); r0 is r8

    def build_goto(self, insn: Insn, index: int, target: str) -> list[str]:
        return [f"b {target}"]

    def build_branch(self, insn: Insn, index: int, target: str) -> list[str]:
        # if dst cond src: compare into cr0, then an inverted short branch over an
        # unconditional one, which reaches beyond bc's +-32 KB
        width = 64 if insn.klass == isa.JMP else 32
        dst = REGISTER_MAP[insn.dst]
        setup, src = self.source(insn, width)
        _, inverted, signed = _COND[insn.op]
        if insn.op == isa.JSET:
            test = [f"and. {TMP2}, {dst}, {src}"] if width == 64 else \
                [f"and {TMP2}, {dst}, {src}", f"clrldi. {TMP2}, {TMP2}, 32"]
        else:
            test = [f"cmp{'' if signed else 'l'}{'d' if width == 64 else 'w'} {dst}, {src}"]
        skip = local_label(index, "not_taken")
        return setup + test + [f"{inverted} {skip}", f"b {target}", f"{skip}:"]

    def build_local_call(self, insn: Insn, index: int, target: str) -> list[str]:
        # local call: save LR and r6-r10, give the callee its own frame
        saved = ["27", "28", "29", "30", "31"]
        return (["mflr 0", "stdu 0, -48(1)"] + [f"std {r}, {8 * (n + 1)}(1)" for n, r in enumerate(saved)]
                + [f"addi 31, 31, -{layout.FRAME_SIZE}", f"bl {target}"]
                + [f"ld {r}, {8 * (n + 1)}(1)" for n, r in enumerate(saved)]
                + ["ld 0, 0(1)", "addi 1, 1, 48", "mtlr 0"])

    def build_helper_call(self, insn: Insn, index: int, address: int) -> list[str]:
        # r1-r5 are already r3-r7; the result comes back in r3
        return (["mflr 0", "stdu 0, -16(1)"] + load_immediate(TMP4, address)
                + [f"mtctr {TMP4}", "bctrl", "ld 0, 0(1)", "addi 1, 1, 16", "mtlr 0", "mr 8, 3"])
