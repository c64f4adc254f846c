/*
 * Print the test table of Linux lib/test_bpf.c as JSON, one test per line, the
 * way the kernel module sees it: fill helpers are called, program lengths are
 * found as the module's filter_length() finds them (the last non-zero slot of a
 * static table), and every field a test runner needs is printed. The harness's
 * own code (MIT); the table itself is included from the extracted source
 * (TEST_BPF_TABLE), which is never stored in the project.
 */
#include "kernel_shim.h"
#include TEST_BPF_TABLE

static void print_string(const char *text)
{
	putchar('"');
	for (; *text; text++) {
		unsigned char c = (unsigned char)*text;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_bytes(const char *name, const u8 *data, int length)
{
	printf(",\"%s\":\"", name);
	for (int i = 0; i < length; i++)
		printf("%02x", data[i]);
	putchar('"');
}

static int static_length(const struct bpf_test *test)
{
	/* As test_bpf's filter_length(): the last slot whose code or k (imm) is non-zero. */
	const struct sock_filter *slots = test->u.insns;
	int length;

	for (length = MAX_INSNS - 1; length > 0; --length)
		if (slots[length].code != 0 || slots[length].k != 0)
			break;
	return length + 1;
}

int main(void)
{
	int count = (int)ARRAY_SIZE(tests);

	for (int which = 0; which < count; which++) {
		struct bpf_test *test = &tests[which];
		int fill_result = 0, length;
		const void *program;
		bool classic = (test->aux & CLASSIC) != 0;

		if (test->fill_helper) {
			fill_result = test->fill_helper(test);
			length = fill_result ? 0 : (int)test->u.ptr.len;
			program = test->u.ptr.insns;
		} else {
			length = static_length(test);
			program = test->u.insns;
		}
		printf("{\"index\":%d,\"descr\":", which);
		print_string(test->descr);
		printf(",\"aux\":%u,\"classic\":%s,\"fill_helper\":%s,\"fill_result\":%d",
		       test->aux, classic ? "true" : "false", test->fill_helper ? "true" : "false",
		       fill_result);
		printf(",\"expected_errcode\":%d,\"stack_depth\":%d,\"nr_testruns\":%d",
		       test->expected_errcode, test->stack_depth, test->nr_testruns);
		printf(",\"subtests\":[");
		for (int sub = 0; sub < MAX_SUBTESTS; sub++)
			printf("%s[%d,%u]", sub ? "," : "", test->test[sub].data_size, test->test[sub].result);
		printf("]");
		print_bytes("data", test->data, MAX_DATA);
		print_bytes("frag_data", test->frag_data, MAX_DATA);
		/* The program as hex of its bytes, 8 per instruction, little-endian fields:
		 * eBPF the wire format (RFC 9669), classic code(16) jt(8) jf(8) k(32). */
		printf(",\"program\":\"");
		for (int i = 0; i < length; i++) {
			u8 bytes[8];
			if (classic) {
				const struct sock_filter *insn = (const struct sock_filter *)program + i;
				bytes[0] = insn->code & 0xff;
				bytes[1] = insn->code >> 8;
				bytes[2] = insn->jt;
				bytes[3] = insn->jf;
				for (int b = 0; b < 4; b++)
					bytes[4 + b] = (insn->k >> (8 * b)) & 0xff;
			} else {
				const struct bpf_insn *insn = (const struct bpf_insn *)program + i;
				u16 off = (u16)insn->off;
				u32 imm = (u32)insn->imm;
				bytes[0] = insn->code;
				bytes[1] = (u8)(insn->dst_reg | (insn->src_reg << 4));
				bytes[2] = off & 0xff;
				bytes[3] = off >> 8;
				for (int b = 0; b < 4; b++)
					bytes[4 + b] = (imm >> (8 * b)) & 0xff;
			}
			for (int b = 0; b < 8; b++) {
				static const char digits[] = "0123456789abcdef";
				putchar(digits[bytes[b] >> 4]);
				putchar(digits[bytes[b] & 15]);
			}
		}
		putchar('"');
		printf("}\n");
	}
	return 0;
}
