"""s390x (z/Architecture, big-endian) JIT backend, encoding machine code directly.

Shape after the kernel's arch/s390/net/bpf_jit_comp.c: the register map at the
top, then ``build_prologue`` / ``build_epilogue`` and one builder per
instruction class for the translation driver (arches/driver.py), which also
lays the code out with its labels (arches/direct.py). Encoding is in
``encoding.py`` (keystone mis-encodes s390x branches, DESIGN.md); each builder
returns an ``encoding.Chunk`` of encoded instructions and labels.

Conventions: the entry is a C function (return address in %r14; %r6-%r15 saved in
the caller's register save area and restored, as the kernel's JIT does); inside,
the link register is %r12 (%r14, the usual one, is eBPF r0); every
branch is ``brcl`` (+-4 GB), so no program is too long; division goes through
the even/odd pair %r0:%r1 (``dlgr``/``dsgr`` trap on a zero divisor and ``dsgr``
on INT_MIN / -1, so both are guarded); shifts take their count from the low six
bits of an address, which is the ISA's mask for 64-bit shifts and is narrowed to
five bits for 32-bit ones. An out-of-packet LD_ABS restores the entry stack
pointer, which the runner's convention fixes at ``layout.NATIVE_STACK_TOP``.
"""
from __future__ import annotations

import capstone
import unicorn
from unicorn import s390x_const as uz

from arches.driver import EncodingBackend, local_label
from arches.s390x.encoding import Chunk
from harness import isa, layout
from harness.isa import Insn

# eBPF register -> s390x GPR number (the kernel's map, reg2hex[] in bpf_jit_comp.c).
REGISTER_MAP = {0: 14, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 7, 7: 8, 8: 9, 9: 10, 10: 13}
R0, R1, TMP, LINK, SP = 0, 1, 11, 12, 15  # %r0:%r1 is the divide pair; %r0 is never a base register
FRAME = 64
SAVE_AREA = 48  # where a callee saves %r6-%r15 in its caller's frame (ELF ABI for s390x, stack frame layout)
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


class S390xBackend(EncodingBackend):
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
    # Saved registers: r6-r13 (and the stack pointer r15) and f8-f15; r14 holds the return address
    # and is volatile.
    callee_saved = {**{f"%r{n}": getattr(uz, f"UC_S390X_REG_R{n}") for n in range(6, 14)},
                    **{f"%f{n}": getattr(uz, f"UC_S390X_REG_F{n}") for n in range(8, 16)}}
    callee_saved_source = "ELF ABI for s390x (zSeries) 1.6, section 'Register usage'"
    helper_stub = bytes.fromhex("07fc")  # br %r12 (bcr 15, %r12)
    sentinel_fill = bytes.fromhex("0700")  # bcr 0, %r0: a no-op; returning to ``until`` raises (DESIGN.md)

    def configure_engine(self, uc) -> None:
        # PSW bits 31-32 (EA, BA): 64-bit addressing. Unicorn starts in 24-bit mode, where
        # the eBPF stack at 0x20000000 would wrap to a low unmapped address (measured).
        uc.reg_write(uz.UC_S390X_REG_PSWM, 0x0000000180000000)

    def set_return_address(self, uc, address: int) -> None:
        uc.reg_write(uz.UC_S390X_REG_R14, address)  # the C ABI's return address register

    # --- translation ------------------------------------------------------------------

    def load_immediate(self, asm: Chunk, register: int, value: int) -> None:
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

    def build_prologue(self, body: str) -> Chunk:
        # Called as a C function (return address in %r14): save %r6-%r15 in the caller's register
        # save area, as the kernel's JIT and the ELF ABI do; the epilogue restores them.
        asm = Chunk()
        asm.emit("stmg", r1=6, r3=15, b2=SP, **displacement(SAVE_AREA))
        asm.emit("aghi", r1=SP, i2=-FRAME)
        self.load_immediate(asm, REGISTER_MAP[10], layout.STACK_TOP)
        asm.emit("brasl", label=body, r1=LINK)
        return asm

    def build_epilogue(self) -> Chunk:
        asm = Chunk()
        asm.emit("lgr", r1=2, r2=REGISTER_MAP[0])
        asm.emit("lmg", r1=6, r3=15, b2=SP, **displacement(FRAME + SAVE_AREA))  # %r15 too: the frame goes
        asm.emit("bcr", r1=MASK["always"], r2=14)
        return asm

    def build_packet_abort(self, epilogue: str) -> Chunk:
        # r0 = 0, back to the entry frame (the runner fixes the entry stack pointer), return
        asm = Chunk()
        asm.emit("lghi", r1=REGISTER_MAP[0], i2=0)
        self.load_immediate(asm, SP, layout.NATIVE_STACK_TOP - FRAME)
        asm.emit("brcl", label=epilogue, r1=MASK["always"])
        return asm

    def build_lddw(self, insn: Insn, index: int, value: int) -> Chunk:
        # LDDW: dst = imm64
        asm = Chunk()
        self.load_immediate(asm, REGISTER_MAP[insn.dst], value)
        return asm

    def build_load(self, insn: Insn, index: int) -> Chunk:
        # LDX: dst = *(size *)(src + off) (MEMSX sign-extends); unaligned is fine on s390x
        asm = Chunk()
        table = _LOAD_SIGNED if insn.mode == isa.MEMSX else _LOAD
        asm.emit(table[insn.nbytes], r1=REGISTER_MAP[insn.dst], b2=REGISTER_MAP[insn.src], **displacement(insn.off))
        return asm

    def build_store(self, insn: Insn, index: int) -> Chunk:
        # ST: *(size *)(dst + off) = imm (stdw sign-extends); STX: = src
        asm = Chunk()
        value = REGISTER_MAP[insn.src] if insn.klass == isa.STX else TMP
        if insn.klass == isa.ST:
            self.load_immediate(asm, TMP, insn.imm)
        asm.emit(_STORE[insn.nbytes], r1=value, b2=REGISTER_MAP[insn.dst], **displacement(insn.off))
        return asm

    # --- ALU --------------------------------------------------------------------------

    def source(self, asm: Chunk, insn: Insn, width: int) -> int:
        """The source operand's register: src, or the immediate loaded into TMP."""
        if insn.source == isa.X:
            return REGISTER_MAP[insn.src]
        self.load_immediate(asm, TMP, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF)
        return TMP

    def build_alu(self, insn: Insn, index: int) -> Chunk:
        asm = Chunk()
        width = 64 if insn.klass == isa.ALU64 else 32
        dst = REGISTER_MAP[insn.dst]
        op = insn.op
        if op == isa.END:
            self.build_swap(asm, insn, dst)
            return asm
        if op == isa.MOV and insn.source == isa.K and not insn.off:
            self.load_immediate(asm, dst, insn.imm if width == 64 else insn.imm & 0xFFFFFFFF)
            return asm
        if op == isa.MOV and not insn.off:
            asm.emit("lgr" if width == 64 else "llgfr", r1=dst, r2=REGISTER_MAP[insn.src])
            return asm
        if op == isa.NEG:
            asm.emit("lcgr", r1=dst, r2=dst)
        elif op == isa.MOV:  # MOVSX: dst = (s8/s16/s32) src
            asm.emit({8: "lgbr", 16: "lghr", 32: "lgfr"}[insn.off], r1=dst, r2=REGISTER_MAP[insn.src])
        else:
            src = self.source(asm, insn, width)
            if op in (isa.DIV, isa.MOD):
                self.build_divide(asm, insn, index, width, dst, src)
                return asm
            if op in _ALU64:
                asm.emit((_ALU64 if width == 64 else _ALU32)[op], r1=dst, r2=src)
            elif width == 64:
                # count = low 6 bits of (base + displacement): the ISA's mask for 64-bit shifts
                asm.emit(_SHIFT64[op], r1=dst, r3=dst, b2=src if src != R0 else TMP, **displacement(0))
            else:  # 32-bit shifts narrow the count to 5 bits
                asm.emit("lgr", r1=R1, r2=src)
                asm.emit("nill", r1=R1, i2=31)
                asm.emit(_SHIFT32[op], r1=dst, r3=dst, b2=R1, **displacement(0))
        if width == 32:  # ALU32 results are zero-extended
            asm.emit("llgfr", r1=dst, r2=dst)
        return asm

    def build_divide(self, asm: Chunk, insn: Insn, index: int, width: int, dst: int, src: int) -> None:
        """DIV/MOD through %r0:%r1, guarded: by 0 -> 0 (div) / dst (mod); signed 64-bit by -1 negates.

        32-bit forms extend both operands to 64 bits first (zero- or sign-), where
        INT_MIN / -1 cannot overflow.
        """
        signed, is_mod = insn.off == 1, insn.op == isa.MOD
        extend = "lgfr" if signed else "llgfr"
        zero, done, regular = (local_label(index, name) for name in ("zero", "done", "divide"))
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

    def build_swap(self, asm: Chunk, insn: Insn, dst: int) -> None:
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

    def build_atomic(self, insn: Insn, index: int) -> Chunk:
        """Compare-and-swap (csg/csy): directly for cmpxchg, as a retry loop for the rest."""
        asm = Chunk()
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
            return asm
        retry = local_label(index, "retry")
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
        return asm

    def build_packet_load(self, insn: Insn, index: int, abort: str) -> Chunk:
        """LD_ABS/LD_IND: r0 = *(size *)(packet + (s32)(imm [+ src])) (already network order)."""
        asm = Chunk()
        size = insn.nbytes
        asm.emit("lgfi", r1=R1, i2=insn.imm)
        if insn.mode == isa.IND:
            asm.emit("ar", r1=R1, r2=REGISTER_MAP[insn.src])  # 32-bit add: the offset is an int
        asm.emit("lgfr", r1=R1, r2=R1)
        asm.emit("ltgr", r1=R1, r2=R1)
        asm.emit("brcl", label=abort, r1=MASK["lt"])
        asm.emit("lgr", r1=R0, r2=R1)
        asm.emit("aghi", r1=R0, i2=size)
        self.load_immediate(asm, TMP, layout.PACKET_LEN_ADDR)
        asm.emit("lg", r1=TMP, b2=TMP, **displacement(0))
        asm.emit("clgr", r1=R0, r2=TMP)
        asm.emit("brcl", label=abort, r1=MASK["gt"])
        self.load_immediate(asm, TMP, layout.MEM_BASE)
        asm.emit(_LOAD[size], r1=REGISTER_MAP[0], x2=R1, b2=TMP, **displacement(0))
        return asm

    # --- jumps and calls --------------------------------------------------------------

    def build_exit(self, insn: Insn, index: int) -> Chunk:
        asm = Chunk()
        asm.emit("bcr", r1=MASK["always"], r2=LINK)
        return asm

    def build_goto(self, insn: Insn, index: int, target: str) -> Chunk:
        asm = Chunk()
        asm.emit("brcl", label=target, r1=MASK["always"])
        return asm

    def build_branch(self, insn: Insn, index: int, target: str) -> Chunk:
        # if dst cond src: the compare sets the condition code, brcl tests it
        asm = Chunk()
        op, width = insn.op, 64 if insn.klass == isa.JMP else 32
        dst = REGISTER_MAP[insn.dst]
        src = self.source(asm, insn, width)
        if op == isa.JSET:
            asm.emit("lgr", r1=R1, r2=dst)
            asm.emit("ngr" if width == 64 else "nr", r1=R1, r2=src)  # CC 0 when the result is zero
        elif width == 64:
            asm.emit("cgr" if op in _SIGNED else "clgr", r1=dst, r2=src)
        else:
            asm.emit("cr" if op in _SIGNED else "clr", r1=dst, r2=src)
        asm.emit("brcl", label=target, r1=MASK[_COND[op]])
        return asm

    def build_local_call(self, insn: Insn, index: int, target: str) -> Chunk:
        # local call: save the link register and r6-r10, give the callee its own frame
        asm = Chunk()
        saved = [LINK, 7, 8, 9, 10, 13]
        asm.emit("aghi", r1=SP, i2=-8 * len(saved))
        for number, register in enumerate(saved):
            asm.emit("stg", r1=register, b2=SP, **displacement(8 * number))
        asm.emit("aghi", r1=REGISTER_MAP[10], i2=-layout.FRAME_SIZE)
        asm.emit("brasl", label=target, r1=LINK)
        for number, register in enumerate(saved):
            asm.emit("lg", r1=register, b2=SP, **displacement(8 * number))
        asm.emit("aghi", r1=SP, i2=8 * len(saved))
        return asm

    def build_helper_call(self, insn: Insn, index: int, address: int) -> Chunk:
        # helper: r1-r5 are already %r2-%r6; the result comes back in %r2
        asm = Chunk()
        asm.emit("aghi", r1=SP, i2=-16)
        asm.emit("stg", r1=LINK, b2=SP, **displacement(0))
        self.load_immediate(asm, R1, address)
        asm.emit("basr", r1=LINK, r2=R1)
        asm.emit("lg", r1=LINK, b2=SP, **displacement(0))
        asm.emit("aghi", r1=SP, i2=16)
        asm.emit("lgr", r1=REGISTER_MAP[0], r2=2)
        return asm
