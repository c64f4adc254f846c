"""The .data format: what parses, and that every problem names file and line."""
import pytest

from harness.cases.corpus import CorpusError, find_case_files, load_case, parse_case


def test_bpf_conformance_style_file_parses():
    case = parse_case("x.data", "# Copyright someone\n-- asm\nmov %r0, 1 # one\nexit\n"
                                "-- mem\n00 11\n22 33\n-- result\n0x1\n")
    assert case.memory == bytes.fromhex("00112233")
    assert case.result == 1 and not case.expect_error
    assert len(case.program) == 2


def test_raw_accepts_bytes_and_words():
    case = parse_case("x.data", "-- raw\nb7 00 00 00 05 00 00 00\n0x0000000000000095\n"
                                "-- result\n5\n")
    assert case.program.encode().hex() == "b700000005000000" "9500000000000000"


def test_result_be_description_and_error_sections():
    case = parse_case("x.data", "-- asm\nexit\n-- result\n1\n-- result-be\n2\n"
                                "-- description\nwhy it matters\n")
    assert (case.expected_result("little"), case.expected_result("big")) == (1, 2)
    assert case.description == "why it matters"
    error_case = parse_case("y.data", "-- asm\nja -1\n-- error\nloops forever\n")
    assert error_case.expect_error and error_case.error_text == "loops forever"


def test_result_binds_both_byte_orders_unless_result_be_is_given():
    case = parse_case("x.data", "-- asm\nexit\n-- result\n7\n")
    assert (case.expected_result("little"), case.expected_result("big")) == (7, 7)
    events = parse_case("x.data", "-- asm\nexit\n-- mem\n00\n-- mem\n01\n-- result\n1 2\n-- result-be\n3\n")
    assert events.expected_results("little") == [1, 2] and events.expected_results("big") == [None, 3]


@pytest.mark.parametrize("section, kind, text", [
    ("-- error fault\nwhat it is about\n", "fault", "what it is about"),
    ("-- error reject\n", "reject", ""),
    ("-- error limit\n", "limit", ""),
    ("-- error\nfault\n", None, "fault"),  # on the next line it is free text (bpf_conformance style)
    ("-- error fault: a message\n", None, "fault: a message"),  # not exactly a kind word
    ("-- error pattern\nFailed to load\n", None, ""),  # uBPF's own section: a regex (error_pattern)
    ("-- error\n", None, ""),
])
def test_error_takes_an_optional_kind_alone_on_its_header_line(section, kind, text):
    case = parse_case("x.data", "-- asm\nja -1\n" + section)
    assert case.expect_error and case.error_kind == kind and case.error_text == text


def test_negative_result_is_taken_as_u64():
    assert parse_case("x.data", "-- asm\nexit\n-- result\n-1\n").result == 2**64 - 1


@pytest.mark.parametrize("text, line, message", [
    ("-- asm\nexit\n-- results\n1\n", 3, "unknown section"),
    ("-- asm\nexit\n-- mem\n00 zz\n", 4, "bad hex byte"),
    ("-- asm\nmov %r0, 1\nmove %r0\n", 3, "unknown mnemonic"),
    ("-- raw\nb7 00 00\n", 2, "8 hex bytes"),
    ("-- asm\nexit\n-- result\nabc\n", 4, "expected a number"),
    ("-- asm\nexit\n-- result\n1\n2\n", 3, "2 values for 1 events"),
    ("-- asm\nexit\n-- budget\n0\n", 3, "-- budget: one number from 1 to 100000000"),
    ("stray text\n-- asm\nexit\n", 1, "before the first"),
    ("-- asm\nexit\n-- asm\nexit\n", 3, "appears twice"),
    ("-- asm\nexit\n-- result-be\n1\n-- error\n", 3, "a failing run has no result"),
])
def test_malformed_files_name_file_and_line(text, line, message):
    with pytest.raises(CorpusError, match=message) as error:
        parse_case("bad.data", text)
    assert error.value.line == line
    assert str(error.value).startswith(f"bad.data:{line}: ")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "-- mem\n00\n-- result\n0\n",
                                  "-- asm\n# nothing\n"])
def test_file_without_program_is_an_error(text):
    with pytest.raises(CorpusError, match="no program"):
        parse_case("empty.data", text)


def test_unreadable_file_is_a_corpus_error(tmp_path):
    path = tmp_path / "binary.data"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CorpusError, match="cannot read"):
        load_case(path)


def test_find_case_files_walks_directories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.data").write_text("-- asm\nexit\n")
    (tmp_path / "two.data").write_text("-- asm\nexit\n")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [p.name for p in find_case_files([tmp_path])] == ["one.data", "two.data"]


def test_capture_without_packets_is_an_error(tmp_path):
    import struct

    (tmp_path / "empty.pcap").write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    case = tmp_path / "case.data"
    case.write_text("-- asm\nmov %r0, 7\nexit\n-- events\nempty.pcap\n-- result\n7\n")
    with pytest.raises(CorpusError, match="empty.pcap holds no packet") as error:
        load_case(case)
    assert error.value.line == 4


def test_paths_that_are_not_case_files_say_what_they_are(tmp_path):
    (tmp_path / "folder.data").mkdir()
    (tmp_path / "dangling.data").symlink_to("nowhere.data")
    (tmp_path / "loop_a.data").symlink_to("loop_b.data")
    (tmp_path / "loop_b.data").symlink_to("loop_a.data")
    reasons = {}
    for name in ("folder.data", "dangling.data", "loop_a.data"):
        with pytest.raises(CorpusError) as error:
            load_case(tmp_path / name)
        reasons[name] = error.value.message
    assert reasons == {"folder.data": "cannot read: a directory, not a case file",
                       "dangling.data": "cannot read: a dangling symbolic link (to nowhere.data)",
                       "loop_a.data": "cannot read: a symbolic link loop"}


def test_resource_bounds_are_checked_before_the_work(monkeypatch, tmp_path):
    from harness.cases import corpus

    monkeypatch.setattr(corpus, "MAX_RAW_SLOTS", 4)
    monkeypatch.setattr(corpus, "MAX_INPUT_BYTES", 8)
    monkeypatch.setattr(corpus, "MAX_EVENTS", 3)
    monkeypatch.setattr(corpus, "MAX_FILE_BYTES", 200)
    with pytest.raises(CorpusError, match="-- raw: 5 lines; at most 4 instructions"):
        parse_case("x.data", "-- raw\n" + "0x95\n" * 5)
    with pytest.raises(CorpusError, match="-- mem: more than 8 bytes") as error:
        parse_case("x.data", "-- asm\nexit\n-- mem\n00 01 02 03\n04 05 06 07\n08\n")
    assert error.value.line == 6
    with pytest.raises(CorpusError, match="more than 3 -- mem sections"):
        parse_case("x.data", "-- asm\nexit\n" + "-- mem\n00\n" * 4)
    big = tmp_path / "big.data"
    big.write_text("-- asm\nexit\n" + "# padding\n" * 30)
    with pytest.raises(CorpusError, match="larger than 200 bytes"):
        load_case(big)


def test_error_messages_are_one_bounded_line():
    with pytest.raises(CorpusError) as error:
        parse_case("x.data", "-- asm\nmov %r0, " + "9" * 5000 + "\nexit\n")
    text = str(error.value)
    assert "\n" not in text and len(text) < 400 and text.startswith("x.data:2: ")
