"""import-test-bpf on a small test_bpf.c-shaped file of our own (no kernel source needed).

The file below has the layout of Linux lib/test_bpf.c (its own definitions, then
fill helpers, then the tests[] table) with a handful of tests of every kind the
importer converts or skips. It needs a C compiler, as the importer does.
"""
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from harness.cases.corpus import load_case
from harness.running.conformance import run_item
from harness.tools.test_bpf import KernelTestImportError, import_test_bpf, table_region

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                reason="no C compiler (Debian: apt-get install gcc); the importer needs one")

FAKE_TEST_BPF = r"""// SPDX-License-Identifier: MIT
/* A test_bpf.c-shaped table written for the harness's own tests. */
#include <linux/filter.h>
#include <linux/bpf.h>

#define MAX_SUBTESTS 3
#define MAX_DATA 128
#define MAX_INSNS 512
#define R0 BPF_REG_0
#define R1 BPF_REG_1
#define R10 BPF_REG_10
#define FLAG_NO_DATA BIT(0)
#define FLAG_EXPECTED_FAIL BIT(1)
#define FLAG_SKB_FRAG BIT(2)
enum { CLASSIC = BIT(6), INTERNAL = BIT(7) };

struct bpf_test {
	const char *descr;
	union {
		struct sock_filter insns[MAX_INSNS];
		struct bpf_insn insns_int[MAX_INSNS];
		struct { void *insns; unsigned int len; } ptr;
	} u;
	__u8 aux;
	__u8 data[MAX_DATA];
	struct { int data_size; __u32 result; } test[MAX_SUBTESTS];
	int (*fill_helper)(struct bpf_test *self);
	int expected_errcode;
	__u8 frag_data[MAX_DATA];
	int stack_depth;
	int nr_testruns;
};

static int fill_many_adds(struct bpf_test *self)
{
	unsigned int len = 5000, i;
	struct bpf_insn *insn = kmalloc_array(len, sizeof(*insn), GFP_KERNEL);

	insn[0] = BPF_MOV64_IMM(R0, 0);
	for (i = 1; i < len - 1; i++)
		insn[i] = BPF_ALU64_IMM(BPF_ADD, R0, 1);
	insn[len - 1] = BPF_EXIT_INSN();
	self->u.ptr.insns = insn;
	self->u.ptr.len = len;
	return 0;
}

static struct bpf_test tests[] = {
	{
		"LEN",
		.u.insns = { BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0), BPF_STMT(BPF_RET | BPF_A, 0) },
		CLASSIC,
		{ 1, 2, 3 },
		{ { 3, 3 }, { 10, 10 } },
	},
	{
		"LD_MARK",
		.u.insns = { BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_MARK),
			     BPF_STMT(BPF_RET | BPF_A, 0) },
		CLASSIC,
		{ },
		{ { 0, 0 } },
	},
	{
		"check: div_k_0",
		.u.insns = { BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0), BPF_STMT(BPF_RET | BPF_K, 0) },
		CLASSIC | FLAG_NO_DATA | FLAG_EXPECTED_FAIL,
		{ },
		{ },
		.expected_errcode = -EINVAL,
	},
	{
		"first word",
		.u.insns_int = {
			BPF_LD_IMM64(R1, 0x0123456789abcdefLL),
			BPF_STX_MEM(BPF_DW, R10, R1, -8),
			BPF_LDX_MEM(BPF_W, R0, R10, -8),
			BPF_EXIT_INSN(),
		},
		INTERNAL,
		{ },
#ifdef __BIG_ENDIAN
		{ { 0, 0x01234567 } },
#else
		{ { 0, 0x89abcdef } },
#endif
	},
	{
		"lowest byte",
		.u.insns_int = {
			BPF_LD_IMM64(R1, 0x0102030405060708ULL),
			BPF_STX_MEM(BPF_DW, R10, R1, -8),
#ifdef __BIG_ENDIAN
			BPF_LDX_MEM(BPF_B, R0, R10, -1),
#else
			BPF_LDX_MEM(BPF_B, R0, R10, -8),
#endif
			BPF_EXIT_INSN(),
		},
		INTERNAL,
		{ },
		{ { 0, 8 } },
	},
	{
		"many adds",
		{ },
		INTERNAL | FLAG_NO_DATA,
		{ },
		{ { 0, 4998 } },
		.fill_helper = fill_many_adds,
	},
	{
		"null context",
		.u.insns_int = { BPF_MOV64_REG(R0, R1), BPF_EXIT_INSN() },
		INTERNAL | FLAG_NO_DATA,
		{ },
		{ { 0, 0 } },
	},
	{
		"frag",
		.u.insns = { BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 70), BPF_STMT(BPF_RET | BPF_A, 0) },
		CLASSIC | FLAG_SKB_FRAG,
		{ },
		{ { 64, 66 } },
		.frag_data = { 0x42 },
	},
	{
		"unreachable tail",
		.u.insns_int = { BPF_MOV64_IMM(R0, 1), BPF_EXIT_INSN(), BPF_MOV64_IMM(R0, 2) },
		INTERNAL,
		{ },
		{ { 0, 1 } },
	},
};

static int test_bpf_init(void) { return 0; }
"""


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("linux")
    (root / "lib").mkdir()
    (root / "lib" / "test_bpf.c").write_text(FAKE_TEST_BPF)
    out = tmp_path_factory.mktemp("cases")
    return import_test_bpf(root, out)


def test_every_test_is_converted_or_skipped_with_a_reason(imported):
    manifest = json.loads((imported.out / "manifest.json").read_text())
    assert manifest["tests"] == imported.total == 9
    skipped = {item["name"]: item["reason"] for item in manifest["skipped"]}
    assert set(skipped) == {"LD_MARK", "frag"}
    assert "SKF_AD_MARK" in skipped["LD_MARK"] and "FLAG_SKB_FRAG" in skipped["frag"]
    converted = {item["name"]: item for item in manifest["converted"]}
    assert converted["many adds"]["folder"] == "long" and converted["many adds"]["slots"] == 5000
    assert converted["LEN"]["folder"] == "classic"
    assert "falls off the end" in converted["unreachable tail"]["known_failure"]
    assert [name for name, item in converted.items() if item["known_failure"]] == ["unreachable tail"]
    assert (imported.out / "harness.toml").read_text().count('empty-memory = "null"') == 1


def test_subtests_flags_and_byte_order_variants_become_case_sections(imported):
    out = imported.out
    length = load_case(out / "classic" / "0000_len.data")
    assert length.events == [bytes([1, 2, 3]), bytes([1, 2, 3]) + bytes(7)]
    assert length.results == [3, 10] and length.result_bits == 32
    refused = load_case(out / "classic" / "0002_check_div_k_0.data")
    assert refused.expect_error and refused.load_rejection
    word = load_case(out / "ebpf" / "0003_first_word.data")
    assert (word.result, word.result_be) == (0x89ABCDEF, 0x01234567)
    little, big = load_case(out / "ebpf" / "0004_lowest_byte.data"), load_case(out / "ebpf" / "0004_lowest_byte.be.data")
    assert (little.byte_order, big.byte_order) == ("little", "big") and little.program != big.program
    long = load_case(out / "long" / "0005_many_adds.data")
    assert (out / "long" / "0005_many_adds.bin").stat().st_size == 5000 * 8 and len(long.program) == 5000
    assert load_case(out / "ebpf" / "0006_null_context.data").entry_pointer == 0


@pytest.mark.parametrize("target", ["interp", "x86_64", "s390x"])
def test_the_converted_cases_pass_except_the_known_failure(imported, target):
    results = {path.name: run_item(str(path), target).status for path in sorted(imported.out.rglob("*.data"))}
    expected = {name: "pass" for name in results}
    # an invalid case here (it declares a result the validator refuses to run): error, and skip on JITs
    expected["0008_unreachable_tail.data"] = "error" if target == "interp" else "skip"
    if target != "interp":
        expected["0002_check_div_k_0.data"] = "skip"  # refused: nothing to run
        order_only = "0004_lowest_byte.data" if target == "s390x" else "0004_lowest_byte.be.data"
        expected[order_only] = "skip"
    else:
        expected["0004_lowest_byte.be.data"] = "pass"
    assert results == expected


def test_a_tarball_works_like_a_tree_and_bad_sources_are_clear(tmp_path):
    tree = tmp_path / "linux-source-9.9" / "lib"
    tree.mkdir(parents=True)
    (tree / "test_bpf.c").write_text(FAKE_TEST_BPF)
    archive = tmp_path / "linux-source-9.9.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "linux-source-9.9", arcname="linux-source-9.9")
    result = import_test_bpf(archive, tmp_path / "out")
    assert (result.total, len(result.converted), len(result.skipped)) == (9, 7, 2)
    with pytest.raises(KernelTestImportError, match="no such file"):
        import_test_bpf(tmp_path / "missing.tar.xz", tmp_path / "out2")
    with pytest.raises(KernelTestImportError, match=r"no lib/test_bpf.c"):
        import_test_bpf(tmp_path / "out", tmp_path / "out3")
    with pytest.raises(KernelTestImportError, match="no 'static struct bpf_test tests\\[\\]'"):
        table_region("int main(void) { return 0; }\n")


def test_the_verifiers_zero_extension_marker_is_found_in_long_programs():
    from harness.isa import Insn, Program
    from harness.tools.test_bpf import zero_extension_marker

    mov32 = Insn(0xBC, 1, 1, 0, 0)  # mov32 r1, r1
    marker = Insn(0xBC, 0, 0, 0, 1)  # BPF_ZEXT_REG(r0): imm 1
    lddw = Insn(0x18, 2, 0, 0, 0xBC)  # 0xbc inside an immediate, not an opcode
    assert zero_extension_marker(Program((mov32, lddw, Insn(0), Insn(0x95))).encode()) is None
    assert zero_extension_marker(Program((mov32, lddw, Insn(0), marker, Insn(0x95))).encode()) == 3
