"""The oracle's edge semantics, checked against values worked out from RFC 9669."""
import pytest

from harness import layout
from harness.cases.asm import assemble
from harness.oracle.interpreter import interpret
from harness.oracle.outcome import FAULT, LIMIT, RETURNED

INT64_MIN = 1 << 63


def r0(source: str, memory: bytes = b"", order: str = "little") -> int:
    outcome = interpret(assemble(source), memory, order)
    assert outcome.kind == RETURNED, outcome.summary()
    return outcome.r0


@pytest.mark.parametrize("source, expected", [
    ("mov %r0, 7\ndiv %r0, 0\nexit", 0),                          # div by 0 -> 0
    ("mov %r0, 7\nmov %r1, 0\nmod %r0, %r1\nexit", 7),            # mod by 0 keeps dst
    ("lddw %r0, 0xffffffff00000007\nmov32 %r1, 0\nmod32 %r0, %r1\nexit", 7),  # ...zero-extended
    ("lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit", INT64_MIN),
    ("lddw %r0, 0x8000000000000000\nsmod %r0, -1\nexit", 0),
    ("mov32 %r0, 0x80000000\nsdiv32 %r0, -1\nexit", 0x80000000),
    ("mov %r0, -7\nsdiv %r0, 2\nexit", 2**64 - 3),                 # truncates toward zero
    ("mov %r0, -7\nsmod %r0, 2\nexit", 2**64 - 1),                 # remainder has dividend's sign
    ("mov %r0, 1\ndiv %r0, -1\nexit", 0),                          # imm sign-extended, unsigned
    ("mov %r0, 1\nlsh %r0, 65\nexit", 2),                          # count masked to 6 bits
    ("mov32 %r0, 1\nlsh32 %r0, 33\nexit", 2),                      # count masked to 5 bits
    ("mov %r0, -1\nadd32 %r0, 1\nexit", 0),                        # zero-extension
    ("mov %r0, -1\nexit", 2**64 - 1),
    ("mov32 %r0, -1\nexit", 0xFFFFFFFF),
    ("mov32 %r0, 0x80\nmovsx832 %r0, %r0\nexit", 0xFFFFFF80),
    ("mov %r1, 0x8000\nmovsx1664 %r0, %r1\nexit", 2**64 - 0x8000),
    ("mov32 %r0, -8\narsh32 %r0, 1\nexit", 0xFFFFFFFC),
    ("lddw %r0, 0x100000000\njeq32 %r0, 0, +1\nmov %r0, 5\nexit", 0x100000000),  # JMP32 low half
    ("mov %r0, -1\njsgt %r0, 0, +1\nmov %r0, 3\nexit", 3),
])
def test_alu_and_jump_edges(source, expected):
    assert r0(source) == expected


def test_byte_order_changes_loads_and_conversions():
    program = "ldxh %r0, [%r1]\nexit"
    assert r0(program, b"\xaa\xbb") == 0xBBAA
    assert r0(program, b"\xaa\xbb", "big") == 0xAABB
    assert r0("mov %r0, 0x1122\nbe16 %r0\nexit") == 0x2211
    assert r0("mov %r0, 0x1122\nbe16 %r0\nexit", order="big") == 0x1122
    assert r0("lddw %r0, 0x1122334455667788\nle32 %r0\nexit") == 0x55667788
    assert r0("mov %r0, 0x1122\nbswap16 %r0\nexit", order="big") == 0x2211


def test_atomics_fetch_old_value_and_cmpxchg_loads_r0():
    source = ("stw [%r10-4], 10\nmov %r1, 5\nlock fetch add32 [%r10-4], %r1\n"
              "ldxw %r2, [%r10-4]\nlsh %r1, 32\nor %r1, %r2\nmov %r0, %r1\nexit")
    assert r0(source) == (10 << 32) | 15
    source = "stdw [%r10-8], 1\nmov %r0, 2\nmov %r1, 9\nlock cmpxchg [%r10-8], %r1\nexit"
    assert r0(source) == 1  # no swap, old value loaded


def test_local_calls_get_their_own_frame_and_keep_callee_saved():
    source = ("mov %r6, 1\nstdw [%r10-8], 40\ncall local f\nldxdw %r1, [%r10-8]\n"
              "add %r0, %r1\nadd %r0, %r6\nexit\n"
              "f:\nmov %r6, 100\nstdw [%r10-8], 2\nldxdw %r0, [%r10-8]\nexit")
    assert r0(source) == 2 + 40 + 1


def test_helpers_see_arguments_and_memory():
    assert r0("mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 100\nexit") \
        == 0x0102030405
    outcome = interpret(assemble("mov %r2, 2\ncall 101\nexit"), b"\x00\x01\x02")
    assert outcome.memory[:3] == bytes([42, 43, 2])


def test_packet_loads_are_network_order_and_end_the_program_out_of_range():
    assert r0("ldabsh 1\nexit", b"\x00\x12\x34") == 0x1234
    assert r0("ldabsh 1\nexit", b"\x00\x12\x34", "big") == 0x1234
    assert r0("mov %r0, 9\nldabsw 1\nmov %r0, 7\nexit", b"\x00\x12\x34") == 0
    assert r0("mov %r3, 1\nldindb %r3, 1\nexit", b"\x00\x12\x34") == 0x34


def test_bad_pointer_faults_with_its_address():
    outcome = interpret(assemble("ldxdw %r0, [%r1-8]\nexit"), b"")
    assert outcome.kind == FAULT and outcome.fault_address == layout.MEM_BASE - 8


def test_runaway_loop_ends_at_the_budget():
    outcome = interpret(assemble("ja -1\nexit"), b"", budget=1000)
    assert outcome.kind == LIMIT and outcome.insns_executed == 1000


def test_stores_are_visible_in_final_memory_and_stack():
    outcome = interpret(assemble("stw [%r1+1], 0x11223344\nstxb [%r10-1], %r1\nexit"), bytes(8))
    assert outcome.memory[:8] == bytes.fromhex("0044332211000000")
    assert outcome.stack[-1] == layout.MEM_BASE & 0xFF
