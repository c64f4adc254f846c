"""x86-64 JIT backend: Intel-syntax assembly text, assembled by keystone in one call.

The reference backend: a new architecture can be copied from this file. Shape
after the kernel's JITs (arch/x86/net/bpf_jit_comp.c): the register map at the
top, then ``build_prologue`` / ``build_epilogue`` and one builder per
instruction class, which the translation driver (arches/driver.py) calls; the
driver owns the loop, the labels, branch targets, helper addresses and the
dispatch whose default raises :class:`UnsupportedInstruction`.

Frame: the entry saves the callee-saved registers, keeps its stack pointer in
r12 (so an out-of-packet LD_ABS can unwind from any call depth), sets r10 to the
top of the eBPF stack and ``call``s eBPF instruction 0; every ``exit`` is a
``ret``; a local call saves r6-r10 on the native stack around a ``call``.
"""
from __future__ import annotations


import capstone
import keystone
import unicorn
from unicorn import x86_const as ux

from arches.driver import AssemblyBackend, local_label
from harness import isa, layout
from harness.isa import Insn

# eBPF register -> x86-64 register (the kernel's map, arch/x86/net/bpf_jit_comp.c reg2hex).
REGISTER_MAP = {0: "rax", 1: "rdi", 2: "rsi", 3: "rdx", 4: "rcx", 5: "r8",
                6: "rbx", 7: "r13", 8: "r14", 9: "r15", 10: "rbp"}
# Scratch registers no eBPF register uses; r12 holds the entry stack pointer.
TMP1, TMP2, TMP3, SAVED_SP = "r11", "r10", "r9", "r12"

_LOW32 = {"rax": "eax", "rdi": "edi", "rsi": "esi", "rdx": "edx", "rcx": "ecx", "rbx": "ebx",
          "rbp": "ebp", **{f"r{n}": f"r{n}d" for n in range(8, 16)}}
_LOW16 = {"rax": "ax", "rdi": "di", "rsi": "si", "rdx": "dx", "rcx": "cx", "rbx": "bx",
          "rbp": "bp", **{f"r{n}": f"r{n}w" for n in range(8, 16)}}
_LOW8 = {"rax": "al", "rdi": "dil", "rsi": "sil", "rdx": "dl", "rcx": "cl", "rbx": "bl",
         "rbp": "bpl", **{f"r{n}": f"r{n}b" for n in range(8, 16)}}
_PTR = {1: "byte", 2: "word", 4: "dword", 8: "qword"}
_ALU_MNEMONIC = {isa.ADD: "add", isa.SUB: "sub", isa.OR: "or", isa.AND: "and", isa.XOR: "xor"}
_SHIFT_MNEMONIC = {isa.LSH: "shl", isa.RSH: "shr", isa.ARSH: "sar"}
_JCC = {isa.JEQ: "je", isa.JNE: "jne", isa.JGT: "ja", isa.JGE: "jae", isa.JLT: "jb", isa.JLE: "jbe",
        isa.JSGT: "jg", isa.JSGE: "jge", isa.JSLT: "jl", isa.JSLE: "jle", isa.JSET: "jne"}
_CALLEE_SAVED = ("rbx", "rbp", "r12", "r13", "r14", "r15")


def width_name(register: str, width: int) -> str:
    """The name of the low ``width`` bits of a 64-bit register."""
    return {64: register, 32: _LOW32[register], 16: _LOW16[register], 8: _LOW8[register]}[width]


def hexnum(value: int) -> str:
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def mem(base: str, offset: int, size: int) -> str:
    """``qword ptr [base + offset]``."""
    sign = "-" if offset < 0 else "+"
    return f"{_PTR[size]} ptr [{base} {sign} {abs(offset):#x}]"


class X86_64Backend(AssemblyBackend):
    name = "x86_64"
    byte_order = "little"
    uc_arch, uc_mode = unicorn.UC_ARCH_X86, unicorn.UC_MODE_64
    cs_arch, cs_mode = capstone.CS_ARCH_X86, capstone.CS_MODE_64
    ks_arch, ks_mode = keystone.KS_ARCH_X86, keystone.KS_MODE_64
    register_map = REGISTER_MAP
    # SysV argument registers are exactly eBPF r1-r5 (rdi, rsi, rdx, rcx, r8).
    argument_registers = (ux.UC_X86_REG_RDI, ux.UC_X86_REG_RSI, ux.UC_X86_REG_RDX,
                          ux.UC_X86_REG_RCX, ux.UC_X86_REG_R8)
    return_register = ux.UC_X86_REG_RAX
    stack_pointer = ux.UC_X86_REG_RSP
    program_counter = ux.UC_X86_REG_RIP
    general_registers = tuple(getattr(ux, f"UC_X86_REG_{name.upper()}") for name in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15"))
    # System V AMD64 ABI, section 3.2.1: rax, rcx, rdx, rsi, rdi, r8-r11 belong to the caller.
    caller_saved_registers = tuple(getattr(ux, f"UC_X86_REG_{name.upper()}") for name in (
        "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"))
    # Callee-saved registers: rbx, rbp, r12-r15 (and rsp) belong to the caller.
    callee_saved = {name: getattr(ux, f"UC_X86_REG_{name.upper()}") for name in _CALLEE_SAVED}
    callee_saved_source = "System V AMD64 psABI 1.0, section 3.2.1, figure 3.4"
    helper_stub = b"\xc3"  # ret
    sentinel_fill = b"\x90"  # nop: the runner's hook stops on the first one

    def set_return_address(self, uc, address: int) -> None:
        """Push ``address`` like a ``call`` would."""
        sp = uc.reg_read(self.stack_pointer) - 8
        uc.mem_write(sp, address.to_bytes(8, "little"))
        uc.reg_write(self.stack_pointer, sp)

    # --- translation ------------------------------------------------------------

    def build_prologue(self, body: str) -> list[str]:
        return ([f"push {register}" for register in _CALLEE_SAVED]
                + [f"mov {SAVED_SP}, rsp", f"movabs rbp, {layout.STACK_TOP:#x}", f"call {body}"])

    def build_epilogue(self) -> list[str]:
        # r0 is already rax; the entry stack pointer unwinds any local-call frames
        return [f"mov rsp, {SAVED_SP}"] + [f"pop {register}" for register in reversed(_CALLEE_SAVED)] + ["ret"]

    def build_packet_abort(self, epilogue: str) -> list[str]:
        # LD_ABS/LD_IND out of the packet: the whole program returns 0.
        return ["xor eax, eax", f"jmp {epilogue}"]

    def build_lddw(self, insn: Insn, index: int, value: int) -> list[str]:
        # LDDW: dst = imm64
        return [f"movabs {REGISTER_MAP[insn.dst]}, {value:#x}"]

    # --- ALU ------------------------------------------------------------------------

    def build_alu(self, insn: Insn, index: int) -> list[str] | None:
        is64 = insn.klass == isa.ALU64
        width = 64 if is64 else 32
        dst64 = REGISTER_MAP[insn.dst]
        dst = width_name(dst64, width)
        src64 = REGISTER_MAP[insn.src] if insn.source == isa.X else None
        src = width_name(src64, width) if src64 else None
        operand = src if src else hexnum(insn.imm if is64 else insn.imm & 0xFFFFFFFF)
        op = insn.op
        if op in _ALU_MNEMONIC:
            # ALU: dst op= src (32-bit forms zero-extend by writing the e-register)
            return [f"{_ALU_MNEMONIC[op]} {dst}, {operand}"]
        if op == isa.MOV:
            if insn.off:  # MOVSX: dst = (s8/s16/s32) src
                source = width_name(src64, insn.off)
                if insn.off == 32:
                    return [f"movsxd {dst64}, {source}"]
                return [f"movsx {dst}, {source}"]
            # MOV: dst = src (a 32-bit mov zero-extends)
            if src is None and is64:
                return [f"mov {dst64}, {hexnum(insn.imm)}"]
            return [f"mov {dst}, {operand}"]
        if op == isa.MUL:
            # MUL: dst *= src (imul's immediate is sign-extended, as ALU64 K wants)
            return [f"imul {dst}, {src}"] if src else [f"imul {dst}, {dst}, {hexnum(insn.imm)}"]
        if op == isa.NEG:
            return [f"neg {dst}"]
        if op in _SHIFT_MNEMONIC:
            return self.build_shift(insn, width, dst64)
        if op in (isa.DIV, isa.MOD):
            return self.build_divide(insn, index, width, dst64)
        if op == isa.END:
            return self.build_swap(insn, dst64)
        return None

    def build_shift(self, insn: Insn, width: int, dst64: str) -> list[str]:
        """dst <<= src: x86 masks the count in cl to 5/6 bits, as the ISA does."""
        mnemonic = _SHIFT_MNEMONIC[insn.op]
        dst = width_name(dst64, width)
        zero_extend = [f"mov {dst}, {dst}"] if width == 32 else []  # a count of 0 writes nothing
        if insn.source == isa.K:
            return [f"{mnemonic} {dst}, {insn.imm & (width - 1)}"] + zero_extend
        src64 = REGISTER_MAP[insn.src]
        if dst64 == "rcx":  # shift a copy: rcx is both the value and the count register
            copy = width_name(TMP1, width)
            return [f"mov {TMP1}, rcx", f"mov ecx, {_LOW32[src64]}", f"{mnemonic} {copy}, cl",
                    f"mov rcx, {TMP1}"] + ([f"mov ecx, ecx"] if width == 32 else [])
        return [f"mov {TMP1}, rcx", f"mov ecx, {_LOW32[src64]}", f"{mnemonic} {dst}, cl",
                f"mov rcx, {TMP1}"] + zero_extend

    def build_divide(self, insn: Insn, index: int, width: int, dst64: str) -> list[str]:
        """DIV/MOD (signed when off=1) through rdx:rax, guarded against #DE.

        Division by zero gives 0 and modulo by zero leaves dst; a signed division by
        -1 is a negation (INT_MIN / -1 = INT_MIN) and modulo by -1 gives 0: x86 traps
        on both, so neither reaches idiv.
        """
        signed, is_mod = insn.off == 1, insn.op == isa.MOD
        dst = width_name(dst64, width)
        divisor = width_name(TMP1, width)
        lines = [f"mov {TMP1}, {REGISTER_MAP[insn.src]}" if insn.source == isa.X
                 else f"mov {TMP1}, {hexnum(insn.imm)}"]
        zero, done, regular = (local_label(index, name) for name in ("zero", "done", "divide"))
        lines += [f"test {divisor}, {divisor}", f"jz {zero}"]
        if signed:
            lines += [f"cmp {divisor}, -1", f"jne {regular}",
                      f"xor {dst}, {dst}" if is_mod else f"neg {dst}", f"jmp {done}"]
        lines += [f"{regular}:", f"mov {TMP2}, rax", f"mov {TMP3}, rdx", f"mov rax, {dst64}"]
        if signed:
            lines += ["cqo" if width == 64 else "cdq", f"idiv {divisor}"]
        else:
            lines += ["xor edx, edx", f"div {divisor}"]
        result = ("rdx" if is_mod else "rax") if width == 64 else ("edx" if is_mod else "eax")
        lines += [f"mov {divisor}, {result}", f"mov rax, {TMP2}", f"mov rdx, {TMP3}",
                  f"mov {dst}, {divisor}", f"jmp {done}", f"{zero}:"]
        # by zero: div -> 0, mod -> dst unchanged (the 32-bit form zero-extends it)
        lines.append(f"mov {dst}, {dst}" if is_mod else f"xor {_LOW32[dst64]}, {_LOW32[dst64]}")
        if is_mod and width == 64:
            lines.pop()
        return lines + [f"{done}:"]

    def build_swap(self, insn: Insn, dst64: str) -> list[str]:
        """le/be relative to this little-endian host; ALU64|END is an unconditional bswap."""
        width = insn.imm
        swap = insn.klass == isa.ALU64 or insn.source == isa.TO_BE
        if not swap:  # le on a little-endian host: truncate to the width
            return {16: [f"movzx {_LOW32[dst64]}, {_LOW16[dst64]}"],
                    32: [f"mov {_LOW32[dst64]}, {_LOW32[dst64]}"], 64: []}[width]
        if width == 16:
            return [f"rol {_LOW16[dst64]}, 8", f"movzx {_LOW32[dst64]}, {_LOW16[dst64]}"]
        return [f"bswap {width_name(dst64, width)}"]

    # --- memory ----------------------------------------------------------------------

    def build_load(self, insn: Insn, index: int) -> list[str]:
        # LDX: dst = *(size *)(src + off); MEMSX sign-extends
        size, dst64 = insn.nbytes, REGISTER_MAP[insn.dst]
        address = mem(REGISTER_MAP[insn.src], insn.off, size)
        if insn.mode == isa.MEMSX:
            return [f"movsxd {dst64}, {address}" if size == 4 else f"movsx {dst64}, {address}"]
        if size == 8:
            return [f"mov {dst64}, {address}"]
        if size == 4:
            return [f"mov {_LOW32[dst64]}, {address}"]
        return [f"movzx {_LOW32[dst64]}, {address}"]

    def build_store(self, insn: Insn, index: int) -> list[str]:
        # ST: *(size *)(dst + off) = imm (stdw sign-extends imm); STX: = src
        size = insn.nbytes
        address = mem(REGISTER_MAP[insn.dst], insn.off, size)
        if insn.klass == isa.ST:
            value = insn.imm if size == 8 else insn.imm & ((1 << (8 * size)) - 1)
            return [f"mov {address}, {hexnum(value)}"]
        return [f"mov {address}, {width_name(REGISTER_MAP[insn.src], 8 * size)}"]

    def build_atomic(self, insn: Insn, index: int) -> list[str]:
        """Atomics: lock add/or/and/xor, xadd, xchg, cmpxchg, and cmpxchg loops for fetch-or/and/xor."""
        size, width = insn.nbytes, 8 * insn.nbytes
        address = mem(REGISTER_MAP[insn.dst], insn.off, size)
        src64 = REGISTER_MAP[insn.src]
        src = width_name(src64, width)
        operation = insn.imm & ~isa.ATOMIC_FETCH
        fetch = bool(insn.imm & isa.ATOMIC_FETCH)
        if insn.imm == isa.ATOMIC_CMPXCHG:
            # r0 = cmpxchg(dst + off, r0, src): the old value always lands in r0
            return [f"lock cmpxchg {address}, {src}"] + (["mov eax, eax"] if width == 32 else [])
        if insn.imm == isa.ATOMIC_XCHG:
            return [f"xchg {address}, {src}"]  # a 32-bit xchg zero-extends src
        if operation == isa.ADD and fetch:
            return [f"lock xadd {address}, {src}"]
        if not fetch:
            return [f"lock {_ALU_MNEMONIC[operation]} {address}, {src}"]
        # fetch-or/and/xor: a cmpxchg loop; rax (eBPF r0) is saved in TMP3
        retry = local_label(index, "retry")
        acc = width_name("rax", width)
        operand = width_name(TMP3 if src64 == "rax" else src64, width)
        new = width_name(TMP2, width)
        lines = [f"mov {TMP3}, rax", f"lea {TMP1}, [{REGISTER_MAP[insn.dst]} {'-' if insn.off < 0 else '+'} "
                 f"{abs(insn.off):#x}]", f"mov {acc}, {_PTR[size]} ptr [{TMP1}]", f"{retry}:",
                 f"mov {new}, {acc}", f"{_ALU_MNEMONIC[operation]} {new}, {operand}",
                 f"lock cmpxchg {_PTR[size]} ptr [{TMP1}], {new}", f"jne {retry}"]
        if src64 == "rax":
            return lines + (["mov eax, eax"] if width == 32 else [])  # r0 = the old value
        return lines + [f"mov {src}, {acc}", "mov rax, " + TMP3]

    def build_packet_load(self, insn: Insn, index: int, abort: str) -> list[str]:
        """LD_ABS/LD_IND: r0 = ntoh(*(size *)(packet + (s32)(imm [+ src]))), else abort with 0."""
        size = insn.nbytes
        lines = [f"mov {_LOW32[TMP1]}, {hexnum(insn.imm & 0xFFFFFFFF)}"]
        if insn.mode == isa.IND:
            lines.append(f"add {_LOW32[TMP1]}, {_LOW32[REGISTER_MAP[insn.src]]}")
        lines += [f"movsxd {TMP1}, {_LOW32[TMP1]}", f"test {TMP1}, {TMP1}", f"js {abort}",
                  f"lea {TMP2}, [{TMP1} + {size}]", f"movabs {TMP3}, {layout.PACKET_LEN_ADDR:#x}",
                  f"cmp {TMP2}, qword ptr [{TMP3}]", f"ja {abort}",
                  f"movabs {TMP3}, {layout.MEM_BASE:#x}", f"add {TMP3}, {TMP1}"]
        if size == 1:
            return lines + [f"movzx eax, byte ptr [{TMP3}]"]
        if size == 2:
            return lines + [f"movzx eax, word ptr [{TMP3}]", "rol ax, 8", "movzx eax, ax"]
        return lines + [f"mov eax, dword ptr [{TMP3}]", "bswap eax"]

    # --- jumps and calls --------------------------------------------------------------

    def build_exit(self, insn: Insn, index: int) -> list[str]:
        return ["ret"]  # EXIT: back to the entry (or the local call site); r0 is rax

    def build_goto(self, insn: Insn, index: int, target: str) -> list[str]:
        return [f"jmp {target}"]

    def build_branch(self, insn: Insn, index: int, target: str) -> list[str]:
        # if dst cond src: cmp (test for JSET) sets the flags, jcc reads them
        width = 64 if insn.klass == isa.JMP else 32
        dst = width_name(REGISTER_MAP[insn.dst], width)
        # the immediate is sign-extended to the compare's width, as the ISA says
        operand = width_name(REGISTER_MAP[insn.src], width) if insn.source == isa.X else hexnum(insn.imm)
        compare = "test" if insn.op == isa.JSET else "cmp"
        return [f"{compare} {dst}, {operand}", f"{_JCC[insn.op]} {target}"]

    def build_local_call(self, insn: Insn, index: int, target: str) -> list[str]:
        # local call: r6-r10 survive, the callee gets its own 512-byte frame
        saved = ["rbx", "r13", "r14", "r15", "rbp"]
        return ([f"push {register}" for register in saved] + [f"sub rbp, {layout.FRAME_SIZE}", f"call {target}"]
                + [f"pop {register}" for register in reversed(saved)])

    def build_helper_call(self, insn: Insn, index: int, address: int) -> list[str]:
        return [f"movabs {TMP1}, {address:#x}", f"call {TMP1}"]  # args already in SysV order; result in rax
