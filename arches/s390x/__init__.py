"""s390x (z/Architecture, big-endian) JIT backend, encoding machine code directly.

Shape after the kernel's arch/s390/net/bpf_jit_comp.c: the register map at the
top, ``build_prologue`` / ``build_insn`` / ``build_epilogue``, one dispatch over
opcodes whose default raises :class:`UnsupportedInstruction`. Encoding is in
``encoding.py`` (keystone mis-encodes s390x branches, DESIGN.md).

Conventions: the link register is %r12 (%r14, the usual one, is eBPF r0); every
branch is ``brcl`` (+-4 GB), so no program is too long; division goes through
the even/odd pair %r0:%r1 (``dlgr``/``dsgr`` trap on a zero divisor and ``dsgr``
on INT_MIN / -1, so both are guarded); shifts take their count from the low six
bits of an address, which is the ISA's mask for 64-bit shifts and is narrowed to
five bits for 32-bit ones. An out-of-packet LD_ABS restores the entry stack
pointer, which the runner's convention fixes at ``layout.NATIVE_STACK_TOP``.
"""
from __future__ import annotations

import time

import capstone
import unicorn
from unicorn import s390x_const as uz

from arches.base import Backend, NativeCode, UnsupportedInstruction
from arches.s390x.encoding import Assembler
from harness import isa, layout
from harness.isa import Insn, Program

# eBPF register -> s390x GPR number (the kernel's map, reg2hex[] in bpf_jit_comp.c).
REGISTER_MAP = {0: 14, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 7, 7: 8, 8: 9, 9: 10, 10: 13}
R0, R1, TMP, LINK, SP = 0, 1, 11, 12, 15  # %r0:%r1 is the divide pair; %r0 is never a base register
FRAME = 64
MASK = {"always": 15, "eq": 8, "ne": 7, "gt": 2, "ge": 10, "lt": 4, "le": 12, "cc1": 4}
_COND = {isa.JEQ: "eq", isa.JNE: "ne", isa.JGT: "gt", isa.JGE: "ge", isa.JLT: "lt", isa.JLE: "le",
         isa.JSGT: "gt", isa.JSGE: "ge", isa.JSLT: "lt", isa.JSLE: "le", isa.JSET: "ne"}
_SIGNED = {isa.JSGT, isa.JSGE, isa.JSLT, isa.JSLE}
_ALU64 = {isa.ADD: "agr", isa.SUB: "sgr", isa.MUL: "msgr", isa.OR: "ogr", isa.AND: "ngr", isa.XOR: "xgr"}
_ALU32 = {isa.ADD: "ar", isa.SUB: "sr", isa.MUL: "msr", isa.OR: "or", isa.AND: "nr", isa.XOR: "xr"}
_SHIFT64 = {isa.LSH: "sllg", isa.RSH: "srlg", isa.ARSH: "srag"}
_SHIFT32 = {isa.LSH: "sllk", isa.RSH: "srlk", isa.ARSH: "srak"}
_LOAD = {1: "llgc", 2: "llgh", 4: "llgf", 8: "lg"}
_LOAD_SIGNED = {1: "lgb", 2: "lgh", 4: "lgf"}
_STORE = {1: "stcy", 2: "sthy", 4: "sty", 8: "stg"}


def displacement(value: int) -> dict[str, int]:
    """A 20-bit signed displacement split into the DL2 (low 12) and DH2 (high 8) fields."""
    return {"dl2": value & 0xFFF, "dh2": value >> 12}


class S390xBackend(Backend):
    name = "s390x"
    byte_order = "big"
    uc_arch, uc_mode = unicorn.UC_ARCH_S390X, unicorn.UC_MODE_BIG_ENDIAN
    cs_arch, cs_mode = capstone.CS_ARCH_SYSZ, capstone.CS_MODE_BIG_ENDIAN
    ks_arch = ks_mode = None  # encoded directly (encoding.py)
    register_map = {number: f"%r{register}" for number, register in REGISTER_MAP.items()}
    argument_registers = tuple(getattr(uz, f"UC_S390X_REG_R{n}") for n in (2, 3, 4, 5, 6))
    return_register = uz.UC_S390X_REG_R2  # helpers return in %r2; the epilogue copies %r14 there
    stack_pointer = uz.UC_S390X_REG_R15
    program_counter = uz.UC_S390X_REG_PC
    general_registers = tuple(getattr(uz, f"UC_S390X_REG_R{n}") for n in range(15))
    # s390x ELF ABI supplement, "Register usage": r0-r5 and r14 are volatile. (r6 carries the
    # fifth argument, eBPF r5, which eBPF's convention lets a call change: trashed as an argument.)
    # The helper stub returns through %r12, which is not volatile.
    caller_saved_registers = tuple(getattr(uz, f"UC_S390X_REG_R{n}") for n in (0, 1, 2, 3, 4, 5, 14))
    helper_stub = bytes.fromhex("07fc")  # br %r12 (bcr 15, %r12)
    sentinel_fill = bytes.fromhex("0700")  # bcr 0, %r0: a no-op; returning to ``until`` raises (DESIGN.md)

    def configure_engine(self, uc) -> None:
        # PSW bits 31-32 (EA, BA): 64-bit addressing. Unicorn starts in 24-bit mode, where
        # the eBPF stack at 0x20000000 would wrap to a low unmapped address (measured).
        uc.reg_write(uz.UC_S390X_REG_PSWM, 0x0000000180000000)

    def set_return_address(self, uc, address: int) -> None:
        uc.reg_write(uz.UC_S390X_REG_R12, address)

    # --- translation ------------------------------------------------------------------

    def translate(self, program: Program) -> NativeCode:
        started = time.perf_counter()
        asm = Assembler()
        self.build_prologue(asm)
        bpf_to_native = {}
        for index in program.instruction_starts():
            asm.label(f"L{index}")
            bpf_to_native[index] = asm.size
            self.build_insn(asm, program, index)
        self.build_epilogue(asm)
        translated = time.perf_counter()
        code, listing = asm.finish()
        return NativeCode(code, "\n".join(listing), 0, bpf_to_native, translated - started,
                          time.perf_counter() - translated)

    def load_immediate(self, asm: Assembler, register: int, value: int) -> None:
        """lghi / lgfi / llilf (+ iihf) for any 64-bit constant."""
        value &= (1 << 64) - 1
        signed = value - (1 << 64) if value >> 63 else value
        if -0x8000 <= signed < 0x8000:
            asm.emit("lghi", r1=register, i2=signed)
        elif -(1 << 31) <= signed < (1 << 31):
            asm.emit("lgfi", r1=register, i2=signed)
        else:
            asm.emit("llilf", r1=register, i2=isa.to_s32(value & 0xFFFFFFFF))
            if value >> 32:
                asm.emit("iihf", r1=register, i2=isa.to_s32(value >> 32))

    def build_prologue(self, asm: Assembler) -> None:
        asm.emit("aghi", r1=SP, i2=-FRAME)
        asm.emit("stg", r1=LINK, b2=SP, **displacement(0))
        self.load_immediate(asm, REGISTER_MAP[10], layout.STACK_TOP)
        asm.emit("brasl", label="L0", r1=LINK)
        asm.label("Lepilogue")
        asm.emit("lgr", r1=2, r2=REGISTER_MAP[0])
        asm.emit("lg", r1=LINK, b2=SP, **displacement(0))
        asm.emit("aghi", r1=SP, i2=FRAME)
        asm.emit("bcr", r1=MASK["always"], r2=LINK)

    def build_epilogue(self, asm: Assembler) -> None:
        # LD_ABS/LD_IND out of the packet: r0 = 0, back to the entry frame, return.
        asm.label("Lpacket_abort")
        asm.emit("lghi", r1=REGISTER_MAP[0], i2=0)
        self.load_immediate(asm, SP, layout.NATIVE_STACK_TOP - FRAME)
        asm.emit("brcl", label="Lepilogue", r1=MASK["always"])

    def build_insn(self, asm: Assembler, program: Program, index: int) -> None:
        insn = program.insns[index]
        klass = insn.klass
        if klass in (isa.ALU, isa.ALU64):
            return self.build_alu(asm, insn, index)
        if klass in (isa.JMP, isa.JMP32):
            return self.build_jump(asm, insn, index)
        if insn.opcode == isa.LDDW and insn.src == isa.LDDW_PLAIN:
            # LDDW: dst = imm64
            return self.load_immediate(asm, REGISTER_MAP[insn.dst], program.lddw_value(index))
        if klass == isa.LD and insn.mode in (isa.ABS, isa.IND):
            return self.build_packet_load(asm, insn)
        if klass == isa.LDX and insn.mode in (isa.MEM, isa.MEMSX):
            # LDX: dst = *(size *)(src + off) (MEMSX sign-extends); unaligned is fine on s390x
            table = _LOAD_SIGNED if insn.mode == isa.MEMSX else _LOAD
            return asm.emit(table[insn.nbytes], r1=REGISTER_MAP[insn.dst], b2=REGISTER_MAP[insn.src],
                            **displacement(insn.off))
        if klass in (isa.ST, isa.STX) and insn.mode == isa.MEM:
            # ST: *(size *)(dst + off) = imm (stdw sign-extends); STX: = src
            value = REGISTER_MAP[insn.src] if klass == isa.STX else TMP
            if klass == isa.ST:
                self.load_immediate(asm, TMP, insn.imm)
            return asm.emit(_STORE[insn.nbytes], r1=value, b2=REGISTER_MAP[insn.dst], **displacement(insn.off))
        if klass == isa.STX and insn.mode == isa.ATOMIC:
            return self.build_atomic(asm, insn, index)
        raise UnsupportedInstruction(index, isa.describe(insn))

    # --- ALU --------------------------------------------------------------------------

    def source(self, asm: Assembler, insn: Insn, width: int) -> int:
        """The source operand's register: src, or the immediate loaded into TMP."""
        if insn.source == isa.X:
            return REGISTER_MAP[insn.src]
        self.load_immediate(asm, TMP, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF)
        return TMP

    def build_alu(self, asm: Assembler, insn: Insn, index: int) -> None:
        width = 64 if insn.klass == isa.ALU64 else 32
        dst = REGISTER_MAP[insn.dst]
        op = insn.op

        def zero_extend() -> None:  # ALU32 results are zero-extended
            if width == 32:
                asm.emit("llgfr", r1=dst, r2=dst)

        if op == isa.END:
            return self.build_swap(asm, insn, dst)
        if op == isa.NEG:
            asm.emit("lcgr", r1=dst, r2=dst)
            return zero_extend()
        if op == isa.MOV:
            if insn.off:  # MOVSX: dst = (s8/s16/s32) src
                asm.emit({8: "lgbr", 16: "lghr", 32: "lgfr"}[insn.off], r1=dst, r2=REGISTER_MAP[insn.src])
                return zero_extend()
            if insn.source == isa.K:
                return self.load_immediate(asm, dst, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF)
            return asm.emit("lgr" if width == 64 else "llgfr", r1=dst, r2=REGISTER_MAP[insn.src])
        src = self.source(asm, insn, width)
        if op in _ALU64:
            asm.emit((_ALU64 if width == 64 else _ALU32)[op], r1=dst, r2=src)
            return zero_extend()
        if op in _SHIFT64:
            # count = low 6 bits of (base + displacement); 32-bit shifts narrow it to 5
            if width == 64:
                count = src if src != R0 else TMP
                return asm.emit(_SHIFT64[op], r1=dst, r3=dst, b2=count, **displacement(0))
            asm.emit("lgr", r1=R1, r2=src)
            asm.emit("nill", r1=R1, i2=31)
            asm.emit(_SHIFT32[op], r1=dst, r3=dst, b2=R1, **displacement(0))
            return zero_extend()
        if op in (isa.DIV, isa.MOD):
            return self.build_divide(asm, insn, index, width, dst, src)
        raise UnsupportedInstruction(index, isa.describe(insn))

    def build_divide(self, asm: Assembler, insn: Insn, index: int, width: int, dst: int, src: int) -> None:
        """DIV/MOD through %r0:%r1, guarded: by 0 -> 0 (div) / dst (mod); signed 64-bit by -1 negates.

        32-bit forms extend both operands to 64 bits first (zero- or sign-), where
        INT_MIN / -1 cannot overflow.
        """
        signed, is_mod = insn.off == 1, insn.op == isa.MOD
        extend = "lgfr" if signed else "llgfr"
        zero, done, regular = f"L{index}_zero", f"L{index}_done", f"L{index}_divide"
        asm.emit(extend if width == 32 else "lgr", r1=TMP, r2=src)  # the divisor
        asm.emit("ltgr", r1=TMP, r2=TMP)
        asm.emit("brcl", label=zero, r1=MASK["eq"])
        if signed and width == 64:
            asm.emit("lghi", r1=R1, i2=-1)
            asm.emit("cgr", r1=TMP, r2=R1)
            asm.emit("brcl", label=regular, r1=MASK["ne"])
            if is_mod:
                asm.emit("lghi", r1=dst, i2=0)
            else:
                asm.emit("lcgr", r1=dst, r2=dst)
            asm.emit("brcl", label=done, r1=MASK["always"])
        asm.label(regular)
        asm.emit(extend if width == 32 else "lgr", r1=R1, r2=dst)  # the dividend, low half of the pair
        if signed:
            asm.emit("dsgr", r1=R0, r2=TMP)
        else:
            asm.emit("lghi", r1=R0, i2=0)
            asm.emit("dlgr", r1=R0, r2=TMP)
        asm.emit("llgfr" if width == 32 else "lgr", r1=dst, r2=R0 if is_mod else R1)
        asm.emit("brcl", label=done, r1=MASK["always"])
        asm.label(zero)
        if is_mod:
            if width == 32:
                asm.emit("llgfr", r1=dst, r2=dst)
        else:
            asm.emit("lghi", r1=dst, i2=0)
        asm.label(done)

    def build_swap(self, asm: Assembler, insn: Insn, dst: int) -> None:
        """be zero-extends on this big-endian host; le and bswap reverse with lrvgr."""
        width = insn.imm
        swap = insn.klass == isa.ALU64 or insn.source == isa.TO_LE
        if not swap:
            if width == 16:
                asm.emit("llghr", r1=dst, r2=dst)
            elif width == 32:
                asm.emit("llgfr", r1=dst, r2=dst)
            return
        asm.emit("lrvgr", r1=dst, r2=dst)
        if width < 64:
            asm.emit("srlg", r1=dst, r3=dst, b2=0, **displacement(64 - width))

    # --- memory -----------------------------------------------------------------------

    def build_atomic(self, asm: Assembler, insn: Insn, index: int) -> None:
        """Compare-and-swap (csg/csy): directly for cmpxchg, as a retry loop for the rest."""
        wide = insn.nbytes == 8
        cas = "csg" if wide else "csy"
        base, src = REGISTER_MAP[insn.dst], REGISTER_MAP[insn.src]
        where = dict(b2=base, **displacement(insn.off))
        r0 = REGISTER_MAP[0]
        if insn.imm == isa.ATOMIC_CMPXCHG:
            # r0 = old; if old == r0 then *ptr = src (cs leaves the old value in R1)
            asm.emit("lgr", r1=R0, r2=r0)
            asm.emit(cas, r1=R0, r3=src, **where)
            asm.emit("lgr" if wide else "llgfr", r1=r0, r2=R0)
            return
        retry = f"L{index}_retry"
        asm.emit("lg" if wide else "llgf", r1=R0, **where)  # old
        asm.label(retry)
        if insn.imm == isa.ATOMIC_XCHG:
            new = src
        else:
            operation = {isa.ADD: "agr", isa.OR: "ogr", isa.AND: "ngr", isa.XOR: "xgr"}[insn.imm & ~isa.ATOMIC_FETCH]
            asm.emit("lgr", r1=R1, r2=R0)
            asm.emit(operation, r1=R1, r2=src)
            new = R1
        asm.emit(cas, r1=R0, r3=new, **where)  # on failure R0 = the current value
        asm.emit("brcl", label=retry, r1=MASK["cc1"])
        if insn.imm & isa.ATOMIC_FETCH:
            asm.emit("lgr" if wide else "llgfr", r1=src, r2=R0)

    def build_packet_load(self, asm: Assembler, insn: Insn) -> None:
        """LD_ABS/LD_IND: r0 = *(size *)(packet + (s32)(imm [+ src])) (already network order)."""
        size = insn.nbytes
        asm.emit("lgfi", r1=R1, i2=insn.imm)
        if insn.mode == isa.IND:
            asm.emit("ar", r1=R1, r2=REGISTER_MAP[insn.src])  # 32-bit add: the offset is an int
        asm.emit("lgfr", r1=R1, r2=R1)
        asm.emit("ltgr", r1=R1, r2=R1)
        asm.emit("brcl", label="Lpacket_abort", r1=MASK["lt"])
        asm.emit("lgr", r1=R0, r2=R1)
        asm.emit("aghi", r1=R0, i2=size)
        self.load_immediate(asm, TMP, layout.PACKET_LEN_ADDR)
        asm.emit("lg", r1=TMP, b2=TMP, **displacement(0))
        asm.emit("clgr", r1=R0, r2=TMP)
        asm.emit("brcl", label="Lpacket_abort", r1=MASK["gt"])
        self.load_immediate(asm, TMP, layout.MEM_BASE)
        asm.emit(_LOAD[size], r1=REGISTER_MAP[0], x2=R1, b2=TMP, **displacement(0))

    # --- jumps and calls --------------------------------------------------------------

    def build_jump(self, asm: Assembler, insn: Insn, index: int) -> None:
        op = insn.op
        if op == isa.EXIT:
            return asm.emit("bcr", r1=MASK["always"], r2=LINK)
        if op == isa.CALL:
            if insn.src == isa.CALL_LOCAL:
                # local call: save the link register and r6-r10, give the callee its own frame
                saved = [LINK, 7, 8, 9, 10, 13]
                asm.emit("aghi", r1=SP, i2=-8 * len(saved))
                for slot, register in enumerate(saved):
                    asm.emit("stg", r1=register, b2=SP, **displacement(8 * slot))
                asm.emit("aghi", r1=REGISTER_MAP[10], i2=-layout.FRAME_SIZE)
                asm.emit("brasl", label=f"L{index + insn.imm + 1}", r1=LINK)
                for slot, register in enumerate(saved):
                    asm.emit("lg", r1=register, b2=SP, **displacement(8 * slot))
                return asm.emit("aghi", r1=SP, i2=8 * len(saved))
            if insn.src == isa.CALL_HELPER:
                asm.emit("aghi", r1=SP, i2=-16)
                asm.emit("stg", r1=LINK, b2=SP, **displacement(0))
                self.load_immediate(asm, R1, layout.STUB_BASE + insn.imm * layout.STUB_STRIDE)
                asm.emit("basr", r1=LINK, r2=R1)
                asm.emit("lg", r1=LINK, b2=SP, **displacement(0))
                asm.emit("aghi", r1=SP, i2=16)
                return asm.emit("lgr", r1=REGISTER_MAP[0], r2=2)
            raise UnsupportedInstruction(index, isa.describe(insn))
        if op == isa.JA:
            offset = insn.imm if insn.klass == isa.JMP32 else insn.off
            return asm.emit("brcl", label=f"L{index + offset + 1}", r1=MASK["always"])
        width = 64 if insn.klass == isa.JMP else 32
        dst = REGISTER_MAP[insn.dst]
        src = self.source(asm, insn, width)
        if op == isa.JSET:
            asm.emit("lgr", r1=R1, r2=dst)
            asm.emit("ngr" if width == 64 else "nr", r1=R1, r2=src)  # CC 0 when the result is zero
        elif width == 64:
            asm.emit("cgr" if op in _SIGNED else "clgr", r1=dst, r2=src)
        else:
            asm.emit("cr" if op in _SIGNED else "clr", r1=dst, r2=src)
        asm.emit("brcl", label=f"L{index + insn.off + 1}", r1=MASK[_COND[op]])
