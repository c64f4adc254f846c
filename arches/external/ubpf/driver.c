/*
 * The harness's driver for uBPF's JITs: one program in, one JSON answer out.
 *
 * Speaks the external-JIT protocol (README, "Testing your own JIT"):
 *
 *   ubpf-driver --jit x86_64|arm64 [protocol=1] [frame_size=N] [helpers=ID,ID,...]
 *               [max_code_size=N] [dispatcher=1]  < program bytes as hex
 *
 * and prints {"code": hex, "entry": 0, "relocations": [...], "data": [...]} or
 * {"rejected": "uBPF's own message"}. This file is the harness's own code
 * (MIT, like the project); it links against an unmodified uBPF vm/ (Apache-2.0)
 * that the harness builds from UBPF_SRC (arches/external/ubpf/__init__.py).
 *
 * What it asks of uBPF, and where each fact comes from:
 * - the back end: vm->jit_translate (vm/ubpf_int.h) set to ubpf_translate_x86_64
 *   or ubpf_translate_arm64; both compile on any host (vm/ubpf_vm.c picks one
 *   by host architecture in ubpf_create);
 * - ExtendedJitMode: the code is fn(mem, mem_len, stack, stack_len) and sets
 *   eBPF r10 = stack + stack_len (emit_jit_prologue in both JITs), so the
 *   harness passes its own stack region and the stack bytes compare;
 * - frames: a stack-usage calculator (ubpf_register_stack_usage_calculator)
 *   answers frame_size for every function, so a local call moves r10 down by
 *   frame_size (default UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE is 256);
 * - helpers: the code reaches helper i through the 8-byte slot at
 *   external_helper_offset + 8 * i (the helper table after the code, see the
 *   "JIT'd Code Layout" comment in vm/ubpf_jit_x86_64.c), when the 8-byte
 *   dispatcher slot at external_dispatcher_offset is 0 (no dispatcher is
 *   registered here). The table has UBPF_MAX_EXT_FUNCS (64) entries and the
 *   loader accepts a call only to a registered index below that
 *   (validate() in vm/ubpf_vm.c), so a helper id of 64 or more is given a
 *   free slot (the highest free first) and the program's call immediates are
 *   renumbered before ubpf_load. Each used slot becomes a relocation: the
 *   harness writes its helper stub's address there.
 * - helper calls carry a context, the entry's first argument (the input
 *   memory pointer): both JITs copy it at entry to a register of their own
 *   (VOLATILE_CTXT: r11 on x86-64, x26 on arm64) and pass it as the sixth
 *   argument (r9, x5) to a table helper; with dispatcher=1 the harness links
 *   the 8-byte dispatcher slot instead (a "dispatcher": true relocation), and
 *   the code calls it with the helper's table index as the sixth argument
 *   (r9, x5) and the context as the seventh (the stack word above the return
 *   address on x86-64, x6 on arm64): emit_dispatched_external_helper_call in
 *   both JITs. helper_ids tells the harness which index is which helper.
 * - the code buffer: uBPF translates into a buffer its caller provides and
 *   fails with "Target buffer too small" when the code does not fit (its own
 *   ubpf_compile uses 64 KiB unless ubpf_set_jit_code_size says otherwise).
 *   The driver starts from an estimate for the program's size and doubles
 *   the buffer until the code fits or max_code_size (the ceiling: the
 *   harness passes its code region's size; raise it when running the driver
 *   by hand) is reached; uBPF's own message then says why it refused.
 * - bpf_to_native: both JITs record where each eBPF instruction's code starts in
 *   jit_state.pc_locs (vm/ubpf_jit_support.h; set at the top of the translate
 *   loop, after the prologue a local function gets, so that prologue counts to
 *   the instruction before it) and where the body ends in jit_state.exit_loc (the
 *   epilogue follows the body in both). uBPF frees the state inside
 *   ubpf_translate_ex, so the build links with --wrap=release_jit_state_result
 *   (a call between uBPF's own files) and __wrap_release_jit_state_result below
 *   copies the offsets out before the real one frees them; uBPF is unmodified.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ubpf.h"
#include "ubpf_int.h"
#include "ubpf_jit_support.h"

#define PROTOCOL_VERSION 1
#define DEFAULT_MAX_CODE_SIZE (16u << 20)
/* The first buffer: most programs' code fits in 24 bytes per instruction slot. */
#define FIRST_BYTES_PER_SLOT 24u
#define FIXED_CODE_BYTES 8192u /* prologue, epilogue, retpoline, dispatcher slot, helper table */
/* uBPF's message when the code does not fit (translate() in both JITs, NotEnoughSpace). */
#define BUFFER_TOO_SMALL "Target buffer too small"
#define MAX_HELPERS UBPF_MAX_EXT_FUNCS

static int frame_size = 512;

/* Where each eBPF slot's code starts (copied from uBPF's jit_state before it is freed). */
static uint32_t* slot_offsets;
static size_t slot_count;
static uint32_t body_end;
static int have_offsets;

void
__real_release_jit_state_result(struct jit_state* state, struct ubpf_jit_result* compile_result);

/* Linked in place of uBPF's release_jit_state_result (-Wl,--wrap): keep pc_locs, then free. */
void
__wrap_release_jit_state_result(struct jit_state* state, struct ubpf_jit_result* compile_result)
{
    if (state->pc_locs && slot_offsets && compile_result->compile_result == UBPF_JIT_COMPILE_SUCCESS) {
        memcpy(slot_offsets, state->pc_locs, slot_count * sizeof(slot_offsets[0]));
        body_end = state->exit_loc;
        have_offsets = 1;
    }
    __real_release_jit_state_result(state, compile_result);
}

/* The stack-usage calculator: every function gets one frame of frame_size bytes. */
static int
frame_usage(const struct ubpf_vm* vm, uint16_t pc, void* cookie)
{
    (void)vm;
    (void)pc;
    (void)cookie;
    return frame_size;
}

/* A placeholder helper: registering it makes the loader accept the call; the harness
 * replaces its address in the helper table with its own stub's (a relocation). */
static uint64_t
placeholder_helper(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    (void)e;
    return 0;
}

static void
json_string(const char* text)
{
    putchar('"');
    for (const unsigned char* p = (const unsigned char*)text; *p; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p == '\n') {
            printf("\\n");
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

static int
reject(const char* message)
{
    /* Strip the trailing newline some uBPF messages carry. */
    char* copy = strdup(message ? message : "(no message)");
    size_t length = strlen(copy);
    while (length && (copy[length - 1] == '\n' || copy[length - 1] == ' ')) {
        copy[--length] = '\0';
    }
    printf("{\"protocol\": %d, \"rejected\": ", PROTOCOL_VERSION);
    json_string(copy);
    printf("}\n");
    free(copy);
    return 0;
}

static int
usage_error(const char* message)
{
    fprintf(stderr, "ubpf-driver: %s\n", message);
    fprintf(stderr, "usage: ubpf-driver --jit x86_64|arm64 [frame_size=N] [helpers=ID,...] "
                    "[max_code_size=N] [dispatcher=1] < program-hex\n");
    return 2;
}

/* Bytes as hex digits on stdout, a block at a time (megabytes of code: printf per byte is slow). */
static void
print_hex(const uint8_t* bytes, size_t length)
{
    static const char digits[] = "0123456789abcdef";
    char block[8192];
    size_t used = 0;
    for (size_t i = 0; i < length; i++) {
        block[used++] = digits[bytes[i] >> 4];
        block[used++] = digits[bytes[i] & 15];
        if (used == sizeof block) {
            fwrite(block, 1, used, stdout);
            used = 0;
        }
    }
    fwrite(block, 1, used, stdout);
}

/* The program: hex digits from stdin, whitespace anywhere between bytes. */
static uint8_t*
read_program(size_t* length)
{
    size_t capacity = 4096, used = 0;
    uint8_t* bytes = malloc(capacity);
    int high = -1, ch;
    while (bytes && (ch = getchar()) != EOF) {
        if (isspace(ch)) {
            continue;
        }
        if (!isxdigit(ch)) {
            free(bytes);
            return NULL;
        }
        int value = isdigit(ch) ? ch - '0' : (tolower(ch) - 'a' + 10);
        if (high < 0) {
            high = value;
            continue;
        }
        if (used == capacity) {
            capacity *= 2;
            bytes = realloc(bytes, capacity);
            if (!bytes) {
                return NULL;
            }
        }
        bytes[used++] = (uint8_t)(high << 4 | value);
        high = -1;
    }
    if (high >= 0) {
        free(bytes);
        return NULL;
    }
    *length = used;
    return bytes;
}

int
main(int argc, char** argv)
{
    const char* jit = NULL;
    size_t max_code_size = DEFAULT_MAX_CODE_SIZE;
    int dispatcher = 0;
    long helper_ids[MAX_HELPERS];
    int helper_count = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--jit") && i + 1 < argc) {
            jit = argv[++i];
        } else if (!strncmp(argv[i], "frame_size=", 11)) {
            frame_size = atoi(argv[i] + 11);
        } else if (!strncmp(argv[i], "max_code_size=", 14)) {
            max_code_size = strtoul(argv[i] + 14, NULL, 0);
        } else if (!strncmp(argv[i], "dispatcher=", 11)) {
            dispatcher = atoi(argv[i] + 11) != 0;
        } else if (!strncmp(argv[i], "helpers=", 8)) {
            char* cursor = argv[i] + 8;
            while (*cursor) {
                if (helper_count == MAX_HELPERS) {
                    return usage_error("more helpers than uBPF's helper table holds");
                }
                char* end = cursor;
                helper_ids[helper_count++] = strtol(cursor, &end, 0);
                if (end == cursor) {
                    return usage_error("helpers= takes a comma-separated list of numbers");
                }
                cursor = end;
                if (*cursor == ',') {
                    cursor++;
                } else if (*cursor) {
                    return usage_error("helpers= takes a comma-separated list of numbers");
                }
            }
        } else if (strchr(argv[i], '=') == NULL) {
            return usage_error("unknown argument");
        } /* other key=value options: a later protocol version's, ignored */
    }
    if (!jit || (strcmp(jit, "x86_64") && strcmp(jit, "arm64"))) {
        return usage_error("--jit x86_64 or --jit arm64 is required");
    }
    if (frame_size <= 0 || frame_size % 16) {
        return usage_error("frame_size must be a positive multiple of 16 (uBPF's rule)");
    }

    size_t length = 0;
    uint8_t* program = read_program(&length);
    if (!program) {
        return usage_error("stdin must hold the program's bytes as hex digits");
    }

    /* Helper numbering: ids below the table size keep their number, the others take free slots. */
    int slot_of[MAX_HELPERS];
    int taken[MAX_HELPERS] = {0};
    for (int h = 0; h < helper_count; h++) {
        slot_of[h] = -1;
        if (helper_ids[h] >= 0 && helper_ids[h] < MAX_HELPERS) {
            slot_of[h] = (int)helper_ids[h];
            taken[slot_of[h]] = 1;
        }
    }
    for (int h = 0, next = MAX_HELPERS - 1; h < helper_count; h++) {
        if (slot_of[h] >= 0) {
            continue;
        }
        while (next >= 0 && taken[next]) {
            next--;
        }
        if (next < 0) {
            return reject("more helpers than uBPF's 64-entry helper table holds");
        }
        slot_of[h] = next;
        taken[next] = 1;
    }
    struct ebpf_inst* insts = (struct ebpf_inst*)program;
    for (size_t i = 0; i < length / sizeof(struct ebpf_inst); i++) {
        if (insts[i].opcode == EBPF_OP_CALL && insts[i].src == 0) {
            for (int h = 0; h < helper_count; h++) {
                if (insts[i].imm == helper_ids[h]) {
                    insts[i].imm = slot_of[h];
                    break;
                }
            }
        }
    }

    struct ubpf_vm* vm = ubpf_create();
    if (!vm) {
        fprintf(stderr, "ubpf-driver: ubpf_create failed\n");
        return 1;
    }
    if (!strcmp(jit, "x86_64")) {
        vm->jit_translate = ubpf_translate_x86_64;
        vm->jit_update_dispatcher = ubpf_jit_update_dispatcher_x86_64;
        vm->jit_update_helper = ubpf_jit_update_helper_x86_64;
    } else {
        vm->jit_translate = ubpf_translate_arm64;
        vm->jit_update_dispatcher = ubpf_jit_update_dispatcher_arm64;
        vm->jit_update_helper = ubpf_jit_update_helper_arm64;
    }
    ubpf_register_stack_usage_calculator(vm, frame_usage, NULL);
    for (int h = 0; h < helper_count; h++) {
        if (ubpf_register(vm, (unsigned)slot_of[h], "harness helper", placeholder_helper) != 0) {
            return reject("ubpf_register refused a helper slot");
        }
    }

    char* errmsg = NULL;
    if (ubpf_load(vm, program, (uint32_t)length, &errmsg) < 0) {
        return reject(errmsg);
    }
    slot_count = length / sizeof(struct ebpf_inst);
    slot_offsets = calloc(slot_count + 1, sizeof(slot_offsets[0]));
    /* A buffer sized from the program, doubled until the code fits or the ceiling is reached. */
    size_t capacity = FIXED_CODE_BYTES + FIRST_BYTES_PER_SLOT * (length / 8);
    uint8_t* buffer = NULL;
    size_t size = 0;
    for (;;) {
        if (capacity > max_code_size) {
            capacity = max_code_size;
        }
        free(buffer);
        buffer = calloc(capacity, 1);
        if (!buffer) {
            fprintf(stderr, "ubpf-driver: cannot allocate %zu bytes\n", capacity);
            return 1;
        }
        size = capacity;
        errmsg = NULL;
        if (ubpf_translate_ex(vm, buffer, &size, &errmsg, ExtendedJitMode) == 0) {
            break;
        }
        bool too_small = errmsg && strstr(errmsg, BUFFER_TOO_SMALL);
        if (!too_small) {
            return reject(errmsg); /* refused for another reason: a bigger buffer changes nothing */
        }
        if (capacity >= max_code_size) {
            char message[512];
            snprintf(message, sizeof message, "%s (a code buffer of %zu bytes, max_code_size)", errmsg, capacity);
            return reject(message);
        }
        capacity *= 2;
    }
    uint32_t dispatcher_slot = vm->jitted_result.external_dispatcher_offset;
    uint32_t table = vm->jitted_result.external_helper_offset;

    printf("{\"protocol\": %d, \"entry\": 0, \"code\": \"", PROTOCOL_VERSION);
    print_hex(buffer, size);
    printf("\",\n \"relocations\": [");
    if (dispatcher) {
        printf("{\"offset\": %u, \"type\": \"abs64\", \"dispatcher\": true}", dispatcher_slot);
    } else {
        for (int h = 0; h < helper_count; h++) {
            printf("%s{\"offset\": %u, \"type\": \"abs64\", \"helper\": %ld}", h ? ", " : "",
                   table + 8u * (unsigned)slot_of[h], helper_ids[h]);
        }
    }
    printf("],\n \"helper_ids\": {");
    for (int h = 0; h < helper_count; h++) {
        printf("%s\"%ld\": %d", h ? ", " : "", helper_ids[h], slot_of[h]);
    }
    printf("},\n \"data\": [{\"offset\": %u, \"size\": 8, \"name\": \"external dispatcher slot\"}, "
           "{\"offset\": %u, \"size\": %u, \"name\": \"helper table\"}]",
           dispatcher_slot, table, 8u * MAX_HELPERS);
    if (have_offsets) {
        /* one pair per instruction start (an lddw's second slot has none), then the body's end */
        printf(",\n \"bpf_to_native\": [");
        for (size_t i = 0; i < slot_count; i++) {
            printf("%s[%zu, %u]", i ? ", " : "", i, slot_offsets[i]);
            if (insts[i].opcode == EBPF_OP_LDDW) {
                i++;
            }
        }
        printf(", [%zu, %u]]", slot_count, body_end);
    }
    printf("}\n");
    free(slot_offsets);
    free(buffer);
    ubpf_destroy(vm);
    free(program);
    return 0;
}
