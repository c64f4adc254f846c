/* Keeps, in an array map that persists between events, how many bytes of each
 * class (byte % 8) all inputs so far contained; returns the count for the class of
 * the event's first byte. A legacy "maps" section definition, relocated by the
 * loader like libbpf does. Natively (gcc, for the expected values) the map is a
 * plain array. */
#include "common.h"

#ifdef __bpf__
struct bpf_map_def {
	u32 type, key_size, value_size, max_entries, map_flags;
};
__attribute__((section("maps"), used)) struct bpf_map_def counts = {
	.type = 2 /* BPF_MAP_TYPE_ARRAY */, .key_size = 4, .value_size = 8, .max_entries = 8,
};
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
#define LOOKUP(key) ((u64 *)bpf_map_lookup_elem(&counts, &(key)))
#else
static u64 native_counts[8];
#define LOOKUP(key) (&native_counts[key])
#endif

ENTRY u64 prog(const u8 *buf, u64 len)
{
	for (u64 i = 0; i < len && i < 256; i++) {
		u32 key = buf[i] % 8;
		u64 *value = LOOKUP(key);
		if (value)
			*value += 1;
	}
	if (len == 0)
		return 0;
	u32 first = buf[0] % 8;
	u64 *value = LOOKUP(first);
	return value ? *value : 0xdead;
}
