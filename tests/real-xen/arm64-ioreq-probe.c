/* In the arm64 Linux dom0 (tests/real-xen/arm64-linux.sh): creates an IOREQ server for a domain
 * (the paused guest), reads its pages' frames back and destroys it, with Debian's arm64
 * libxendevicemodel. Xen on Arm has dm_op only when built with CONFIG_IOREQ_SERVER: Debian's
 * arm64 hypervisor answers ENOSYS. Prints one "IOREQ ..." line; exit status 0 on success. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xendevicemodel.h>

int main(int argc, char **argv)
{
    xendevicemodel_handle *dm;
    ioservid_t id;
    evtchn_port_t bufioreq_port = 0;
    domid_t domid;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DOMID\n", argv[0]);
        return 2;
    }
    domid = (domid_t)atoi(argv[1]);
    dm = xendevicemodel_open(NULL, 0);
    if (!dm) {
        printf("IOREQ open: FAIL (%s)\n", strerror(errno));
        return 1;
    }
    if (xendevicemodel_create_ioreq_server(dm, domid, 0 /* HVM_IOREQSRV_BUFIOREQ_OFF */, &id)) {
        printf("IOREQ create_ioreq_server(domain %u): FAIL (%s)\n", domid, strerror(errno));
        return 1;
    }
    /* On Arm the pages are mapped through the resource interface: the gfns are not offered. */
    if (xendevicemodel_get_ioreq_server_info(dm, domid, id, NULL, NULL, &bufioreq_port)) {
        printf("IOREQ get_ioreq_server_info(domain %u, server %u): FAIL (%s)\n", domid, id, strerror(errno));
        return 1;
    }
    if (xendevicemodel_set_ioreq_server_state(dm, domid, id, 1)) {
        printf("IOREQ set_ioreq_server_state(domain %u, server %u): FAIL (%s)\n", domid, id, strerror(errno));
        return 1;
    }
    if (xendevicemodel_destroy_ioreq_server(dm, domid, id)) {
        printf("IOREQ destroy_ioreq_server(domain %u, server %u): FAIL (%s)\n", domid, id, strerror(errno));
        return 1;
    }
    printf("IOREQ server %u for domain %u: created, info read, enabled, destroyed: ok\n", id, domid);
    xendevicemodel_close(dm);
    return 0;
}
