/*
 * A QEMU TCG plugin (API version 1, QEMU 7.2) that counts the instructions executed between two
 * marker instructions of the test guest, split by who ran them: Xen, the dom0 kernel, 64-bit user
 * space (the IOREQ server) and code below 4 GiB (the 32-bit PVH guest).
 *
 * Arguments: start=ADDR,end=ADDR, the guest-virtual addresses of the two `rdtsc` instructions
 * around the guest's timed loop. Each start/end pair prints one line on stderr:
 *   INSN window N: xen=X kernel=K user=U guest=G
 *
 * Only the handful of API functions used here are declared (Debian does not package the plugin
 * header); their signatures are those of QEMU's plugin API version 1.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
enum { INLINE_ADD_U64 = 0 };
enum { CB_NO_REGS = 0 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, int op, void *ptr,
                                              uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, vcpu_udata_cb_t cb,
                                            int flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

enum region { XEN, KERNEL, USER, GUEST, REGIONS };
static const char *const names[REGIONS] = {"xen", "kernel", "user", "guest"};
/* One vCPU (-smp 1), so plain counters are exact. */
static uint64_t count[REGIONS], base[REGIONS];
static uint64_t start_va, end_va;
static int window, open_window;

static enum region region_of(uint64_t va)
{
    if (va >= 0xffff800000000000ull && va < 0xffff880000000000ull)
        return XEN;
    if (va >= 0xffff880000000000ull)
        return KERNEL;
    if (va < 0x100000000ull)
        return GUEST;
    return USER;
}

static void window_start(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    memcpy(base, count, sizeof base);
    open_window = 1;
}

static void window_end(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    if (!open_window)
        return;
    open_window = 0;
    /* One write, so the line is not interleaved with the serial console on the same log. */
    char line[256];
    int n = snprintf(line, sizeof line, "\nINSN window %d:", ++window);
    for (int r = 0; r < REGIONS; r++)
        n += snprintf(line + n, sizeof line - n, " %s=%" PRIu64, names[r], count[r] - base[r]);
    snprintf(line + n, sizeof line - n, "\n");
    fputs(line, stderr);
}

static int is_rdtsc(const struct qemu_plugin_insn *insn)
{
    const uint8_t *b = qemu_plugin_insn_data(insn);
    return qemu_plugin_insn_size(insn) == 2 && b[0] == 0x0f && b[1] == 0x31;
}

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    uint64_t va = qemu_plugin_tb_vaddr(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, INLINE_ADD_U64, &count[region_of(va)], n);
    if (region_of(va) != GUEST)
        return;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t at = qemu_plugin_insn_vaddr(insn);
        if ((at == start_va || at == end_va) && is_rdtsc(insn))
            qemu_plugin_register_vcpu_insn_exec_cb(insn, at == start_va ? window_start : window_end,
                                                   CB_NO_REGS, NULL);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const void *info, int argc,
                                                               char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "start=", 6))
            start_va = strtoull(argv[i] + 6, NULL, 0);
        else if (!strncmp(argv[i], "end=", 4))
            end_va = strtoull(argv[i] + 4, NULL, 0);
    }
    if (!start_va || !end_va) {
        fprintf(stderr, "insn-windows: needs start=ADDR,end=ADDR\n");
        return 1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
    return 0;
}
