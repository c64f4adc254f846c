/* Bitwise CRC-32 (IEEE, reflected): shifts, xors and data-dependent branches. */
#include "common.h"

ENTRY u64 prog(const u8 *buf, u64 len)
{
	u32 crc = 0xffffffffu;
	for (u64 i = 0; i < len && i < 1024; i++) {
		crc ^= buf[i];
		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
	}
	return ~crc;
}
