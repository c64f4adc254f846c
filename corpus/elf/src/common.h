/* Shared by every program here: built for eBPF by clang, and natively by gcc for
 * the expected values (corpus/elf/build.py). The entry point receives the input
 * memory and its length, as the harness passes r1 and r2. */
#ifndef COMMON_H
#define COMMON_H
typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
#ifdef __bpf__
#define ENTRY __attribute__((section("harness"), used))
#else
#define ENTRY
#endif
#endif
