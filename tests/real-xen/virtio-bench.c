/*
 * virtio-bench FILE BS COUNT [direct], for the virtio guests of the real-Xen scenarios: reads
 * COUNT blocks of BS bytes from FILE (with O_DIRECT if asked: every read then reaches the
 * device) after an untimed warm-up of COUNT/8 reads, and prints
 *   ops=COUNT bytes=TOTAL tsc=TICKS ns=NANOSECONDS clock=SOURCE
 * TICKS is the machine's instruction clock over the timed reads: under QEMU's -icount shift=0
 * (every part of the machine counts: Xen, dom0, the device model or back end and this guest)
 * it advances by one per instruction executed, so TICKS / COUNT is instructions per operation.
 * SOURCE says where TICKS comes from:
 *   rdtsc       (x86) the TSC, which -icount makes count instructions;
 *   monotonic   (elsewhere, e.g. aarch64, which has no TSC) CLOCK_MONOTONIC in nanoseconds:
 *               -icount shift=0 runs the virtual clock at one nanosecond per instruction (on
 *               Arm the generic timer's counter is read by the vDSO, at its own granularity:
 *               16 ns at QEMU virt's 62.5 MHz, nothing over hundreds of thousands per read).
 * NANOSECONDS is CLOCK_MONOTONIC on both (guest time; also instructions under -icount
 * shift=0, wall-clock time without it). A short read or an error ends it with status 1.
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
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define CLOCK_SOURCE "rdtsc"
static uint64_t ticks(void) { return __rdtsc(); }
#else
#define CLOCK_SOURCE "monotonic"
static uint64_t ticks(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}
#endif

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
    uint64_t t0 = ticks();
    if (read_all(fd, buf, bs, count, seekable)) return 1;
    uint64_t t1 = ticks();
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    printf("ops=%ld bytes=%ld tsc=%llu ns=%lld clock=%s\n", count, count * bs, (unsigned long long)(t1 - t0), ns,
           CLOCK_SOURCE);
    return 0;
}
