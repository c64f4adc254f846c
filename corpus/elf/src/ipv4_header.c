/* Parse an IPv4 header: version, header length, protocol, and whether the header
 * checksum is right (ones' complement sum of big-endian 16-bit words, built from
 * bytes so the result does not depend on the host's byte order).
 * Returns (ihl << 40) | (protocol << 32) | (checksum ok << 16) | total length,
 * or 0 when the buffer is too short or not IPv4. */
#include "common.h"

ENTRY u64 prog(const u8 *ip, u64 len)
{
	if (len < 20 || (ip[0] >> 4) != 4)
		return 0;
	u64 ihl = ip[0] & 0xf;
	if (ihl < 5 || ihl * 4 > len)
		return 0;
	u32 sum = 0;
	for (u64 i = 0; i < ihl * 4 && i < 60; i += 2)
		sum += ((u32)ip[i] << 8) | ip[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	u64 ok = sum == 0xffff;
	u64 total = ((u64)ip[2] << 8) | ip[3];
	return (ihl << 40) | ((u64)ip[9] << 32) | (ok << 16) | total;
}
