/*
 * Baseline for the IOREQ comparison: the same register bank as xen's regbank example (the
 * registers the guest's timed loop and phase protocol use), written the way a C device model
 * is written today, on Xen's stable libraries (libxendevicemodel, libxenforeignmemory,
 * libxenevtchn). Usage: cserver DOMID. SIGTERM stops it with a full teardown.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

/* hvm_op.h keeps this behind __XEN_TOOLS__ although dm_op is stable (a header quirk). */
#ifndef HVM_IOREQSRV_BUFIOREQ_OFF
#define HVM_IOREQSRV_BUFIOREQ_OFF 0
#endif

#define BASE 0xfe000000ULL
#define PORT 0x5000

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static uint64_t scratch, counter, phase, requests;

static uint64_t dev_read(int mmio, uint64_t addr)
{
    if (!mmio)
        return addr;
    switch (addr - BASE) {
    case 0x0: return 0x43535256; /* "CSRV" */
    case 0x8: return scratch;
    case 0x10: return ++counter;
    case 0x38: return phase;
    default: return 0;
    }
}

static void dev_write(int mmio, uint64_t addr, uint64_t v)
{
    if (!mmio)
        return;
    switch (addr - BASE) {
    case 0x8: scratch = v; break;
    case 0x38:
        phase = v;
        printf("cserver: phase %llu\n", (unsigned long long)v);
        fflush(stdout);
        break;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: cserver DOMID\n");
        return 2;
    }
    domid_t dom = (domid_t)atoi(argv[1]);
    signal(SIGTERM, on_term);
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
    if (!dm || !fm || !xce) {
        perror("cserver: open");
        return 1;
    }
    unsigned int vcpus = 0;
    ioservid_t id;
    if (xendevicemodel_nr_vcpus(dm, dom, &vcpus) || vcpus == 0 || vcpus > 128) {
        perror("cserver: xendevicemodel_nr_vcpus");
        return 1;
    }
    if (xendevicemodel_create_ioreq_server(dm, dom, HVM_IOREQSRV_BUFIOREQ_OFF, &id)) {
        perror("cserver: xendevicemodel_create_ioreq_server");
        return 1;
    }
    void *page = NULL;
    xenforeignmemory_resource_handle *res = xenforeignmemory_map_resource(
        fm, dom, XENMEM_resource_ioreq_server, id, XENMEM_resource_ioreq_server_frame_ioreq(0),
        1, &page, PROT_READ | PROT_WRITE, 0);
    if (!res) {
        perror("cserver: xenforeignmemory_map_resource");
        return 1;
    }
    if (xendevicemodel_set_ioreq_server_state(dm, dom, id, 1)) {
        perror("cserver: set_ioreq_server_state");
        return 1;
    }
    shared_iopage_t *sp = page;
    evtchn_port_t ports[128];
    for (unsigned int v = 0; v < vcpus; v++) {
        xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(xce, dom, sp->vcpu_ioreq[v].vp_eport);
        if (p < 0) {
            perror("cserver: xenevtchn_bind_interdomain");
            return 1;
        }
        ports[v] = p;
    }
    if (xendevicemodel_map_io_range_to_ioreq_server(dm, dom, id, 1, BASE, BASE + 0x7ff) ||
        xendevicemodel_map_io_range_to_ioreq_server(dm, dom, id, 0, PORT, PORT + 3)) {
        perror("cserver: map_io_range");
        return 1;
    }
    printf("cserver: serving domain %u (server %u)\n", dom, id);
    fflush(stdout);
    while (!stop) {
        xenevtchn_port_or_error_t port = xenevtchn_pending(xce);
        if (port < 0) {
            if (errno == EINTR)
                continue;
            perror("cserver: xenevtchn_pending");
            break;
        }
        xenevtchn_unmask(xce, port);
        for (unsigned int v = 0; v < vcpus; v++) {
            if (ports[v] != (evtchn_port_t)port)
                continue;
            ioreq_t *slot = &sp->vcpu_ioreq[v];
            if (slot->state != STATE_IOREQ_READY)
                break;
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            ioreq_t req = *slot;
            uint64_t mask = req.size >= 8 ? ~0ULL : ((1ULL << (req.size * 8)) - 1);
            int mmio = req.type == IOREQ_TYPE_COPY;
            if (req.type == IOREQ_TYPE_COPY || req.type == IOREQ_TYPE_PIO) {
                if (req.dir == IOREQ_READ)
                    slot->data = dev_read(mmio, req.addr) & mask;
                else
                    dev_write(mmio, req.addr, req.data & mask);
            }
            requests++;
            __atomic_thread_fence(__ATOMIC_RELEASE);
            slot->state = STATE_IORESP_READY;
            xenevtchn_notify(xce, port);
        }
    }
    /* Teardown in reverse; a request posted before the unmap is answered as unclaimed. */
    xendevicemodel_unmap_io_range_from_ioreq_server(dm, dom, id, 0, PORT, PORT + 3);
    xendevicemodel_unmap_io_range_from_ioreq_server(dm, dom, id, 1, BASE, BASE + 0x7ff);
    for (unsigned int v = 0; v < vcpus; v++) {
        ioreq_t *slot = &sp->vcpu_ioreq[v];
        if (slot->state != STATE_IOREQ_READY)
            continue;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        ioreq_t req = *slot;
        if (req.dir == IOREQ_READ && !req.data_is_ptr)
            slot->data = ~0ULL;
        __atomic_thread_fence(__ATOMIC_RELEASE);
        slot->state = STATE_IORESP_READY;
        xenevtchn_notify(xce, ports[v]);
    }
    for (unsigned int v = 0; v < vcpus; v++)
        xenevtchn_unbind(xce, ports[v]);
    xendevicemodel_set_ioreq_server_state(dm, dom, id, 0);
    xenforeignmemory_unmap_resource(fm, res);
    xendevicemodel_destroy_ioreq_server(dm, dom, id);
    printf("cserver: stopped after %llu requests, torn down\n", (unsigned long long)requests);
    return 0;
}
