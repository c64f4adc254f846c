/* The 64-bit FNV-1a hash of a buffer (multiplication by a 64-bit prime: a JIT's
 * mul and wrap-around). */
#include "common.h"

ENTRY u64 prog(const u8 *buf, u64 len)
{
	u64 hash = 0xcbf29ce484222325ULL;
	for (u64 i = 0; i < len && i < 4096; i++) {
		hash ^= buf[i];
		hash *= 0x100000001b3ULL;
	}
	return hash;
}
