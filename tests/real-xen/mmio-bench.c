/*
 * mmio-bench THREADS N, for the Linux PVH guest of the IOREQ scenario: thread i, pinned to vCPU
 * i, reads the regbank counter register (MMIO 0xfe000010, through /dev/mem) N times; prints the
 * TSC ticks from the start barrier until every thread is done. With two threads both vCPUs have
 * requests in flight at once, so a server can find several events pending per wake-up.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <x86intrin.h>

static volatile uint32_t *reg;
static long n;
static pthread_barrier_t start;

static void *worker(void *arg)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)(long)arg, &set);
    sched_setaffinity(0, sizeof set, &set);
    pthread_barrier_wait(&start);
    for (long i = 0; i < n; i++)
        (void)reg[0x10 / 4];
    return NULL;
}

int main(int argc, char **argv)
{
    int t = argc > 1 ? atoi(argv[1]) : 1;
    n = argc > 2 ? atol(argv[2]) : 2000;
    int fd = open("/dev/mem", O_RDWR | O_SYNC);
    if (fd < 0) { perror("open /dev/mem"); return 1; }
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0xfe000000);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    reg = p;
    if (t < 1 || t > 8) { fprintf(stderr, "mmio-bench: 1 to 8 threads\n"); return 1; }
    pthread_t th[8];
    pthread_barrier_init(&start, NULL, t + 1);
    for (int i = 0; i < t; i++)
        pthread_create(&th[i], NULL, worker, (void *)(long)i);
    for (long i = 0; i < n / 4; i++) /* untimed warm-up */
        (void)reg[0x10 / 4];
    uint64_t t0 = __rdtsc();
    pthread_barrier_wait(&start);
    for (int i = 0; i < t; i++)
        pthread_join(th[i], NULL);
    uint64_t t1 = __rdtsc();
    printf("threads=%d reads=%ld tsc=%llu\n", t, n * t, (unsigned long long)(t1 - t0));
    return 0;
}
