/*
 * virtio-bench FILE BS COUNT [direct], for the virtio guests of the real-Xen scenarios: reads
 * COUNT blocks of BS bytes from FILE (with O_DIRECT if asked: every read then reaches the
 * device) after an untimed warm-up of COUNT/8 reads, and prints
 *   ops=COUNT bytes=TOTAL tsc=TICKS ns=NANOSECONDS
 * Under QEMU's -icount shift=0 the machine's TSC and clock count its instructions (all of them:
 * Xen, dom0, the device model and this guest), so TICKS / COUNT is instructions per operation.
 * A short read or an error ends it with status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

static int read_all(int fd, char *buf, long bs, long count, int seekable)
{
    for (long i = 0; i < count; i++) {
        if (seekable && lseek(fd, 0, SEEK_SET) < 0) { perror("lseek"); return -1; }
        long got = 0;
        while (got < bs) {
            ssize_t n = read(fd, buf + got, bs - got);
            if (n <= 0) { fprintf(stderr, "read: %s\n", n ? strerror(errno) : "end of file"); return -1; }
            got += n;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) { fprintf(stderr, "usage: virtio-bench FILE BS COUNT [direct]\n"); return 2; }
    long bs = atol(argv[2]), count = atol(argv[3]);
    int direct = argc > 4 && !strcmp(argv[4], "direct");
    int fd = open(argv[1], O_RDONLY | (direct ? O_DIRECT : 0));
    if (fd < 0) { perror(argv[1]); return 1; }
    char *buf;
    if (bs <= 0 || count <= 0 || posix_memalign((void **)&buf, 4096, bs)) { fprintf(stderr, "bad size\n"); return 2; }
    /* A block device is read at offset 0 again and again (O_DIRECT: no cache to hit). */
    int seekable = lseek(fd, 0, SEEK_CUR) >= 0 && direct;
    if (read_all(fd, buf, bs, count / 8 + 1, seekable)) return 1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    uint64_t t0 = __rdtsc();
    if (read_all(fd, buf, bs, count, seekable)) return 1;
    uint64_t t1 = __rdtsc();
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    printf("ops=%ld bytes=%ld tsc=%llu ns=%lld\n", count, count * bs, (unsigned long long)(t1 - t0), ns);
    return 0;
}
