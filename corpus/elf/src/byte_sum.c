/* A loop summing a buffer, byte by byte. */
#include "common.h"

ENTRY u64 prog(const u8 *buf, u64 len)
{
	u64 sum = 0;
	for (u64 i = 0; i < len && i < 4096; i++)
		sum += buf[i];
	return sum;
}
