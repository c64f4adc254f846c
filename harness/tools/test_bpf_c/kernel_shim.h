/*
 * Just enough of the kernel's vocabulary to compile the test table of Linux
 * lib/test_bpf.c (its tests[] array and the fill helpers before it) as an
 * ordinary user-space program, so the table can be read exactly as the kernel
 * builds it. This file is the harness's own (MIT, like the project): the
 * instruction constructors are written from the eBPF and classic BPF encodings
 * (RFC 9669, include/uapi/linux/filter.h's documented layout), the constants are
 * the ABI's published values, and prandom is L'Ecuyer's LFSR113 generator.
 *
 * Compiled twice by harness/tools/test_bpf.py: with HARNESS_BIG_ENDIAN defined
 * (then __BIG_ENDIAN is defined, as on a big-endian kernel, and cpu_to_le/be
 * swap accordingly) and without it.
 */
#ifndef HARNESS_KERNEL_SHIM_H
#define HARNESS_KERNEL_SHIM_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;
typedef u8 __u8;
typedef u16 __u16;
typedef u32 __u32;
typedef u64 __u64;
typedef s16 __s16;
typedef s32 __s32;
typedef s64 __s64;

#define BIT(n) (1UL << (n))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BUG_ON(condition) do { if (condition) abort(); } while (0)
#define max(a, b) ((a) > (b) ? (a) : (b))
#define min(a, b) ((a) < (b) ? (a) : (b))

/* 64-bit division helpers (the divisor is never 0 where test_bpf calls them). */
static inline u64 div64_u64(u64 dividend, u64 divisor) { return dividend / divisor; }
static inline void div64_u64_rem(u64 dividend, u64 divisor, u64 *remainder) { *remainder = dividend % divisor; }

#define GFP_KERNEL 0
#define kmalloc(size, flags) malloc(size)
#define kmalloc_array(count, size, flags) calloc((count), (size))
#define kcalloc(count, size, flags) calloc((count), (size))
#define kfree(pointer) free(pointer)
#define ENOMEM 12
#define EINVAL 22
#define ENOTSUPP 524

#define S16_MAX INT16_MAX
#define S16_MIN INT16_MIN
#define U16_MAX UINT16_MAX
#define S32_MAX INT32_MAX
#define S32_MIN INT32_MIN
#define U32_MAX UINT32_MAX
#define S64_MAX INT64_MAX
#define S64_MIN INT64_MIN
#define U64_MAX UINT64_MAX

/* Byte order of the kernel being imitated. The C library's <endian.h> defines both
 * __BIG_ENDIAN and __LITTLE_ENDIAN as constants; a kernel defines only its own. */
#undef __BIG_ENDIAN
#undef __LITTLE_ENDIAN
#ifdef HARNESS_BIG_ENDIAN
#define __BIG_ENDIAN 4321
#define cpu_to_be16(x) ((u16)(x))
#define cpu_to_be32(x) ((u32)(x))
#define cpu_to_be64(x) ((u64)(x))
#define cpu_to_le16(x) __builtin_bswap16((u16)(x))
#define cpu_to_le32(x) __builtin_bswap32((u32)(x))
#define cpu_to_le64(x) __builtin_bswap64((u64)(x))
#else
#define __LITTLE_ENDIAN 1234
#define cpu_to_le16(x) ((u16)(x))
#define cpu_to_le32(x) ((u32)(x))
#define cpu_to_le64(x) ((u64)(x))
#define cpu_to_be16(x) __builtin_bswap16((u16)(x))
#define cpu_to_be32(x) __builtin_bswap32((u32)(x))
#define cpu_to_be64(x) __builtin_bswap64((u64)(x))
#endif

/* The two instruction formats. */
struct sock_filter {  /* classic BPF */
	u16 code;
	u8 jt;
	u8 jf;
	u32 k;
};

struct bpf_insn {  /* eBPF: dst in the low nibble of the register byte */
	u8 code;
	u8 dst_reg : 4;
	u8 src_reg : 4;
	s16 off;
	s32 imm;
};

/* Instruction classes, sizes, modes, operations and sources (the ABI's values). */
#define BPF_LD 0x00
#define BPF_LDX 0x01
#define BPF_ST 0x02
#define BPF_STX 0x03
#define BPF_ALU 0x04
#define BPF_JMP 0x05
#define BPF_RET 0x06
#define BPF_MISC 0x07
#define BPF_JMP32 0x06
#define BPF_ALU64 0x07
#define BPF_CLASS(code) ((code) & 0x07)
#define BPF_SIZE(code) ((code) & 0x18)
#define BPF_MODE(code) ((code) & 0xe0)
#define BPF_OP(code) ((code) & 0xf0)
#define BPF_SRC(code) ((code) & 0x08)
#define BPF_W 0x00
#define BPF_H 0x08
#define BPF_B 0x10
#define BPF_DW 0x18
#define BPF_IMM 0x00
#define BPF_ABS 0x20
#define BPF_IND 0x40
#define BPF_MEM 0x60
#define BPF_LEN 0x80
#define BPF_MSH 0xa0
#define BPF_ATOMIC 0xc0
#define BPF_ADD 0x00
#define BPF_SUB 0x10
#define BPF_MUL 0x20
#define BPF_DIV 0x30
#define BPF_OR 0x40
#define BPF_AND 0x50
#define BPF_LSH 0x60
#define BPF_RSH 0x70
#define BPF_NEG 0x80
#define BPF_MOD 0x90
#define BPF_XOR 0xa0
#define BPF_MOV 0xb0
#define BPF_ARSH 0xc0
#define BPF_END 0xd0
#define BPF_TO_LE 0x00
#define BPF_TO_BE 0x08
#define BPF_FROM_LE BPF_TO_LE
#define BPF_FROM_BE BPF_TO_BE
#define BPF_JA 0x00
#define BPF_JEQ 0x10
#define BPF_JGT 0x20
#define BPF_JGE 0x30
#define BPF_JSET 0x40
#define BPF_JNE 0x50
#define BPF_JSGT 0x60
#define BPF_JSGE 0x70
#define BPF_CALL 0x80
#define BPF_EXIT 0x90
#define BPF_JLT 0xa0
#define BPF_JLE 0xb0
#define BPF_JSLT 0xc0
#define BPF_JSLE 0xd0
#define BPF_K 0x00
#define BPF_X 0x08
#define BPF_A 0x10
#define BPF_TAX 0x00
#define BPF_TXA 0x80
#define BPF_FETCH 0x01
#define BPF_XCHG (0xe0 | BPF_FETCH)
#define BPF_CMPXCHG (0xf0 | BPF_FETCH)
#define BPF_MAXINSNS 4096
#define BPF_MEMWORDS 16
#define MAX_BPF_STACK 512

enum { BPF_REG_0, BPF_REG_1, BPF_REG_2, BPF_REG_3, BPF_REG_4, BPF_REG_5,
       BPF_REG_6, BPF_REG_7, BPF_REG_8, BPF_REG_9, BPF_REG_10, MAX_BPF_REG };

/* Classic ancillary and header-relative offsets. */
#define SKF_AD_OFF (-0x1000)
#define SKF_AD_PROTOCOL 0
#define SKF_AD_PKTTYPE 4
#define SKF_AD_IFINDEX 8
#define SKF_AD_NLATTR 12
#define SKF_AD_NLATTR_NEST 16
#define SKF_AD_MARK 20
#define SKF_AD_QUEUE 24
#define SKF_AD_HATYPE 28
#define SKF_AD_RXHASH 32
#define SKF_AD_CPU 36
#define SKF_AD_ALU_XOR_X 40
#define SKF_AD_VLAN_TAG 44
#define SKF_AD_VLAN_TAG_PRESENT 48
#define SKF_AD_PAY_OFFSET 52
#define SKF_AD_RANDOM 56
#define SKF_AD_VLAN_TPID 60
#define SKF_AD_MAX 64
#define SKF_NET_OFF (-0x100000)
#define ETH_P_IP 0x0800  /* IPv4 EtherType */
#define ETH_HLEN 14
#define SKF_LL_OFF (-0x200000)

/* Classic instruction constructors. */
#define BPF_STMT(code, k) { (u16)(code), 0, 0, (k) }
#define BPF_JUMP(code, k, jt, jf) { (u16)(code), (jt), (jf), (k) }
#define __BPF_STMT(code, k) ((struct sock_filter) BPF_STMT(code, k))
#define __BPF_JUMP(code, k, jt, jf) ((struct sock_filter) BPF_JUMP(code, k, jt, jf))

/* eBPF instruction constructors: one field layout, named by what they encode. */
#define BPF_RAW_INSN(CODE, DST, SRC, OFF, IMM) \
	((struct bpf_insn) { .code = (CODE), .dst_reg = (DST), .src_reg = (SRC), .off = (OFF), .imm = (IMM) })
#define BPF_ALU64_REG(OP, DST, SRC) BPF_RAW_INSN(BPF_ALU64 | BPF_OP(OP) | BPF_X, DST, SRC, 0, 0)
#define BPF_ALU32_REG(OP, DST, SRC) BPF_RAW_INSN(BPF_ALU | BPF_OP(OP) | BPF_X, DST, SRC, 0, 0)
#define BPF_ALU64_IMM(OP, DST, IMM) BPF_RAW_INSN(BPF_ALU64 | BPF_OP(OP) | BPF_K, DST, 0, 0, IMM)
#define BPF_ALU32_IMM(OP, DST, IMM) BPF_RAW_INSN(BPF_ALU | BPF_OP(OP) | BPF_K, DST, 0, 0, IMM)
#define BPF_ENDIAN(TYPE, DST, LEN) BPF_RAW_INSN(BPF_ALU | BPF_END | BPF_SRC(TYPE), DST, 0, 0, LEN)
#define BPF_MOV64_REG(DST, SRC) BPF_ALU64_REG(BPF_MOV, DST, SRC)
#define BPF_MOV32_REG(DST, SRC) BPF_ALU32_REG(BPF_MOV, DST, SRC)
#define BPF_MOV64_IMM(DST, IMM) BPF_ALU64_IMM(BPF_MOV, DST, IMM)
#define BPF_MOV32_IMM(DST, IMM) BPF_ALU32_IMM(BPF_MOV, DST, IMM)
/* The verifier's zero-extension marker: mov32 dst, dst with imm = 1. */
#define BPF_ZEXT_REG(DST) BPF_RAW_INSN(BPF_ALU | BPF_MOV | BPF_X, DST, DST, 0, 1)
/* lddw: two slots, the second holding the upper 32 bits. */
#define BPF_LD_IMM64_RAW(DST, SRC, IMM) \
	BPF_RAW_INSN(BPF_LD | BPF_DW | BPF_IMM, DST, SRC, 0, (u32)(IMM)), \
	BPF_RAW_INSN(0, 0, 0, 0, ((u64)(IMM)) >> 32)
#define BPF_LD_IMM64(DST, IMM) BPF_LD_IMM64_RAW(DST, 0, IMM)
#define BPF_LD_ABS(SIZE, IMM) BPF_RAW_INSN(BPF_LD | BPF_SIZE(SIZE) | BPF_ABS, 0, 0, 0, IMM)
#define BPF_LD_IND(SIZE, SRC, IMM) BPF_RAW_INSN(BPF_LD | BPF_SIZE(SIZE) | BPF_IND, 0, SRC, 0, IMM)
#define BPF_LDX_MEM(SIZE, DST, SRC, OFF) BPF_RAW_INSN(BPF_LDX | BPF_SIZE(SIZE) | BPF_MEM, DST, SRC, OFF, 0)
#define BPF_STX_MEM(SIZE, DST, SRC, OFF) BPF_RAW_INSN(BPF_STX | BPF_SIZE(SIZE) | BPF_MEM, DST, SRC, OFF, 0)
#define BPF_ST_MEM(SIZE, DST, OFF, IMM) BPF_RAW_INSN(BPF_ST | BPF_SIZE(SIZE) | BPF_MEM, DST, 0, OFF, IMM)
#define BPF_ATOMIC_OP(SIZE, OP, DST, SRC, OFF) \
	BPF_RAW_INSN(BPF_STX | BPF_SIZE(SIZE) | BPF_ATOMIC, DST, SRC, OFF, OP)
#define BPF_STX_XADD(SIZE, DST, SRC, OFF) BPF_ATOMIC_OP(SIZE, BPF_ADD, DST, SRC, OFF)
#define BPF_JMP_REG(OP, DST, SRC, OFF) BPF_RAW_INSN(BPF_JMP | BPF_OP(OP) | BPF_X, DST, SRC, OFF, 0)
#define BPF_JMP_IMM(OP, DST, IMM, OFF) BPF_RAW_INSN(BPF_JMP | BPF_OP(OP) | BPF_K, DST, 0, OFF, IMM)
#define BPF_JMP32_REG(OP, DST, SRC, OFF) BPF_RAW_INSN(BPF_JMP32 | BPF_OP(OP) | BPF_X, DST, SRC, OFF, 0)
#define BPF_JMP32_IMM(OP, DST, IMM, OFF) BPF_RAW_INSN(BPF_JMP32 | BPF_OP(OP) | BPF_K, DST, 0, OFF, IMM)
#define BPF_JMP_A(OFF) BPF_RAW_INSN(BPF_JMP | BPF_JA, 0, 0, OFF, 0)
#define BPF_EXIT_INSN() BPF_RAW_INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* The kernel's seeded pseudo-random generator (prandom_u32_state): L'Ecuyer's
 * four-component combined Tausworthe generator LFSR113, with the kernel's way of
 * deriving the four seeds from one 64-bit value (each component needs a seed above
 * a minimum: 2, 8, 16, 128). */
struct rnd_state {
	u32 s1, s2, s3, s4;
};

static inline u32 harness_lfsr_seed(u32 value, u32 minimum)
{
	return value < minimum ? value + minimum : value;
}

static inline void prandom_seed_state(struct rnd_state *state, u64 seed)
{
	u32 mixed = (u32)((seed >> 32) ^ (seed << 10) ^ seed);

	state->s1 = harness_lfsr_seed(mixed, 2U);
	state->s2 = harness_lfsr_seed(mixed, 8U);
	state->s3 = harness_lfsr_seed(mixed, 16U);
	state->s4 = harness_lfsr_seed(mixed, 128U);
}

static inline u32 harness_lfsr_step(u32 s, unsigned a, unsigned b, u32 mask, unsigned d)
{
	return ((s & mask) << d) ^ (((s << a) ^ s) >> b);
}

static inline u32 prandom_u32_state(struct rnd_state *state)
{
	state->s1 = harness_lfsr_step(state->s1, 6, 13, 0xfffffffeU, 18);
	state->s2 = harness_lfsr_step(state->s2, 2, 27, 0xfffffff8U, 2);
	state->s3 = harness_lfsr_step(state->s3, 13, 21, 0xfffffff0U, 7);
	state->s4 = harness_lfsr_step(state->s4, 3, 12, 0xffffff80U, 13);
	return state->s1 ^ state->s2 ^ state->s3 ^ state->s4;
}

#endif
