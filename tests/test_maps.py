"""Maps, multi-event cases and capture files, through the corpus parser and the interpreter."""
import struct

import pytest

from harness.running.conformance import oracle, run_item
from harness.cases.corpus import CorpusError, parse_case, read_pcap
from harness.cases.mapspec import MapError, MapSpec

COUNTER = """-- map c array value=8 entries=1
-- asm
    stw [%r10-4], 0
    lddw %r1, map:c
    mov %r2, %r10
    add %r2, -4
    call 1
    ldxdw %r1, [%r0]
    add %r1, 10
    stxdw [%r0], %r1
    mov %r0, %r1
    exit
"""


@pytest.mark.parametrize("text, message", [
    ("m stack key=4 value=4 entries=1", "unknown map kind"),
    ("m hash key=4 value=4", "lacks entries="),
    ("m array key=8 value=4 entries=1", "key=4"),
    ("m hash key=4 value=4 entries=0", "entries 1-65536"),
    ("m hash size=4", "bad map option"),
])
def test_bad_map_declarations_say_why(text, message):
    with pytest.raises(MapError, match=message):
        MapSpec.parse(text)


def test_map_errors_in_a_case_name_the_line():
    with pytest.raises(CorpusError, match=r"x.data:2: -- map: unknown map kind"):
        parse_case("x.data", "-- asm\n-- map m queue\nexit\n")
    with pytest.raises(CorpusError, match=r"x.data:3: unknown map 'nope' \(declared: m\)"):
        parse_case("x.data", "-- map m hash key=4 value=4 entries=2\n-- asm\nlddw %r1, map:nope\nexit\n")


def test_values_persist_from_event_to_event_and_every_r0_is_checked(tmp_path):
    path = tmp_path / "c.data"
    path.write_text(COUNTER + "-- mem\n00\n-- mem\n00\n-- mem\n00\n-- result\n10 20 30\n")
    outcomes, _ = oracle(str(path), "little")
    assert [outcome.r0 for outcome in outcomes] == [10, 20, 30]
    assert outcomes[-1].maps == (("c", (("00000000", "1e00000000000000"),)),)
    assert run_item(str(path), "interp").status == "pass"
    wrong = tmp_path / "wrong.data"
    wrong.write_text(COUNTER + "-- mem\n00\n-- mem\n00\n-- result\n10 10\n")
    result = run_item(str(wrong), "interp")
    assert result.status == "fail" and "returns r0=0xa, 0xa" in result.expected


def test_result_count_must_match_the_events():
    with pytest.raises(CorpusError, match="3 values for 2 events"):
        parse_case("x.data", COUNTER + "-- mem\n00\n-- mem\n00\n-- result\n1 2 3\n")


def _pcap(packets, big_endian=False):
    order = ">" if big_endian else "<"
    data = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for packet in packets:
        data += struct.pack(order + "IIII", 0, 0, len(packet), len(packet)) + packet
    return data


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_captures_become_events(tmp_path, big_endian):
    assert read_pcap(_pcap([b"\x01\x02", b"\x03"], big_endian)) == [b"\x01\x02", b"\x03"]
    (tmp_path / "cap.pcap").write_bytes(_pcap([b"\x01", b"\x02"], big_endian))
    case = parse_case(str(tmp_path / "c.data"), "-- events cap.pcap\n-- asm\nexit\n")
    assert case.inputs == [b"\x01", b"\x02"]


def test_bad_event_files_are_clear_errors(tmp_path):
    (tmp_path / "cut.pcap").write_bytes(_pcap([b"\x01\x02\x03"])[:-1])
    with pytest.raises(CorpusError, match="runs past the end"):
        parse_case(str(tmp_path / "c.data"), "-- events cut.pcap\n-- asm\nexit\n")
    (tmp_path / "ev.txt").write_text("0102\nzz\n")
    with pytest.raises(CorpusError, match=r"ev.txt:2: not a line of hex bytes"):
        parse_case(str(tmp_path / "c.data"), "-- events ev.txt\n-- asm\nexit\n")
    with pytest.raises(CorpusError, match="cannot read"):
        parse_case(str(tmp_path / "c.data"), "-- events missing.pcap\n-- asm\nexit\n")
