/*
 * The one set-up step of the stub-domain scenario that stable interfaces do not offer: make
 * domain STUBDOM the device model of domain TARGET (XEN_DOMCTL_set_target, through libxenctrl,
 * from dom0), as a toolstack does for the stub domains it builds. Usage: set-target STUBDOM TARGET.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenctrl.h>

static int domid(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v >= DOMID_FIRST_RESERVED)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    uint32_t stub, target;
    xc_interface *xch;

    if (argc != 3 || domid(argv[1], &stub) || domid(argv[2], &target)) {
        fprintf(stderr, "usage: set-target STUBDOM TARGET\n");
        return 2;
    }
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) {
        fprintf(stderr, "set-target: xc_interface_open: %s\n", strerror(errno));
        return 1;
    }
    if (xc_domain_set_target(xch, stub, target)) {
        fprintf(stderr, "set-target: XEN_DOMCTL_set_target(%u, %u): errno %d (%s)\n", stub, target,
                errno, strerror(errno));
        xc_interface_close(xch);
        return 1;
    }
    printf("set-target: domain %u is now the device model of domain %u\n", stub, target);
    xc_interface_close(xch);
    return 0;
}
