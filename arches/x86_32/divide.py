"""The out-of-line 64-bit division routines of the x86_32 backend.

i386 has no 64/64 divide: ``div r32`` divides edx:eax by 32 bits and traps (#DE)
when the quotient does not fit in 32 bits. The kernel's 32-bit x86 JIT
(arch/x86/net/bpf_jit_comp32.c) refuses ALU64 DIV/MOD ("notyet"); this backend
compiles them to a ``call`` into a routine of its own, emitted once after the
packet-abort path of every program that divides in 64 bits.

``Ludivmod64`` is the unsigned routine of Hacker's Delight (2nd ed., section 9-5,
"unsigned doubleword division from long division"), written here for i386:

* divisor < 2**32 and dividend high word < divisor: one ``div``;
* divisor < 2**32 otherwise: two ``div`` (high word, then remainder:low word);
* divisor >= 2**32: the quotient fits in 32 bits. Normalise the divisor so its
  top bit is set (``bsr``/``shld``), divide half the dividend by its top word
  with one ``div`` (cannot overflow), undo the normalisation, and correct the
  estimate, which is exact or one too small after the decrement, with one
  multiply-subtract and compare.

No path loops, so a division costs at most ~30 native instructions (the
harness's budget is 16 native instructions per eBPF instruction on average).

``Lsdivmod64`` is the signed form (sdiv/smod, ISA v4): divide the magnitudes
unsigned, then give the quotient the sign of ``dividend ^ divisor`` and the
remainder the sign of the dividend (truncating division, as RFC 9669 says).
INT64_MIN's magnitude 2**63 is representable unsigned, so INT64_MIN / -1 gives
2**63 = INT64_MIN and INT64_MIN % -1 gives 0 without any guard: no ``idiv``.

Convention (both routines): dividend in edx:eax (high:low), divisor in ebx:ecx,
never zero (the call site handles a zero divisor); quotient back in edx:eax,
remainder in ebx:ecx; esi and edi clobbered, ebp kept.
"""
from __future__ import annotations

UNSIGNED = "Ludivmod64"
SIGNED = "Lsdivmod64"


def unsigned_routine() -> list[str]:
    """``Ludivmod64``: (edx:eax, ebx:ecx) -> quotient edx:eax, remainder ebx:ecx."""
    return [
        f"{UNSIGNED}:",
        "test ebx, ebx",
        f"jnz {UNSIGNED}_wide",
        "cmp edx, ecx",
        f"jae {UNSIGNED}_two",
        # the quotient fits in 32 bits: one division of edx:eax
        "div ecx",
        "mov ecx, edx",
        "xor edx, edx",
        "ret",
        f"{UNSIGNED}_two:",
        # high word first: q1 = u1 / v, then (u1 % v):u0 / v
        "mov esi, eax",
        "mov eax, edx",
        "xor edx, edx",
        "div ecx",
        "mov edi, eax",
        "mov eax, esi",
        "div ecx",
        "mov ecx, edx",
        "mov edx, edi",
        "ret",
        f"{UNSIGNED}_wide:",
        # v >= 2**32: esi:edi keep v (low in esi, high in edi), the stack keeps u
        "mov esi, ecx",
        "mov edi, ebx",
        "push edx",
        "push eax",
        "bsr ecx, edi",  # b = index of v's top bit in the high word; n = 31 - b
        "xor ecx, 31",
        "mov ebx, edi",
        "shld ebx, esi, cl",  # v1 = (v << n) >> 32, top bit set
        "shrd eax, edx, 1",
        "shr edx, 1",  # u >> 1 < 2**63, so (u >> 1) / v1 < 2**32: div cannot trap
        "div ebx",
        "xor ecx, 31",
        "shr eax, cl",  # q0 = (q1 << n) >> 31 = q1 >> b
        "sub eax, 1",
        "adc eax, 0",  # q0 = q0 - 1 unless q0 == 0
        "mov ebx, eax",
        "mul esi",  # q0 * v: low word of q0 * v_lo ...
        "mov ecx, eax",
        "mov eax, ebx",
        "imul eax, edi",  # ... plus q0 * v_hi in the high word (q0 * v <= u fits)
        "add edx, eax",
        "sub dword ptr [esp], ecx",  # r = u - q0 * v, in place on the stack
        "sbb dword ptr [esp + 4], edx",
        "pop ecx",
        "pop edx",
        "cmp ecx, esi",  # r >= v: q0 + 1, r - v
        "mov eax, edx",
        "sbb eax, edi",
        f"jb {UNSIGNED}_done",
        "add ebx, 1",
        "sub ecx, esi",
        "sbb edx, edi",
        f"{UNSIGNED}_done:",
        "mov eax, ebx",
        "mov ebx, edx",
        "xor edx, edx",
        "ret",
    ]


def signed_routine() -> list[str]:
    """``Lsdivmod64``: truncating signed division through ``Ludivmod64``."""
    return [
        f"{SIGNED}:",
        "mov esi, edx",
        "xor esi, ebx",
        "push esi",  # bit 31: the quotient's sign
        "push edx",  # bit 31: the remainder's sign (the dividend's)
        "test edx, edx",
        f"jns {SIGNED}_dividend",
        "neg eax",
        "adc edx, 0",
        "neg edx",
        f"{SIGNED}_dividend:",
        "test ebx, ebx",
        f"jns {SIGNED}_divisor",
        "neg ecx",
        "adc ebx, 0",
        "neg ebx",
        f"{SIGNED}_divisor:",
        f"call {UNSIGNED}",
        "pop esi",
        "test esi, esi",
        f"jns {SIGNED}_remainder",
        "neg ecx",
        "adc ebx, 0",
        "neg ebx",
        f"{SIGNED}_remainder:",
        "pop esi",
        "test esi, esi",
        f"jns {SIGNED}_quotient",
        "neg eax",
        "adc edx, 0",
        "neg edx",
        f"{SIGNED}_quotient:",
        "ret",
    ]


def routines(signed: bool) -> list[str]:
    """The unsigned routine, and the signed one on top of it when ``signed``."""
    return unsigned_routine() + (signed_routine() if signed else [])
