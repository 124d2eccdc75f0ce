/* What one sleep and wake-up costs a thread in accounted CPU on this host, by what wakes it:
 * its own timer expiring (ppoll with a timeout) or another thread's write (a pipe).
 * Built and run by benches/wake-cost.sh. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double cpu_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    long gap_ns = argc > 2 ? atol(argv[2]) : 500000;
    struct timespec gap = {gap_ns / 1000000000, gap_ns % 1000000000};

    double c0 = cpu_us();
    for (int i = 0; i < n; i++) ppoll(NULL, 0, &gap, NULL);
    printf("timer wake: %.1f us of CPU per sleep and wake-up (%d sleeps of %ld us)\n",
           (cpu_us() - c0) / n, n, gap_ns / 1000);

    int fd[2];
    if (pipe(fd) != 0) return 1;
    pid_t child = fork();
    if (child == 0) {
        char b = 1;
        for (int i = 0; i < n; i++) {
            nanosleep(&gap, NULL);
            if (write(fd[1], &b, 1) != 1) _exit(1);
        }
        _exit(0);
    }
    char b;
    struct pollfd p = {fd[0], POLLIN, 0};
    c0 = cpu_us();
    for (int i = 0; i < n; i++) {
        ppoll(&p, 1, NULL, NULL);
        if (read(fd[0], &b, 1) != 1) return 1;
    }
    printf("pipe wake:  %.1f us of CPU per sleep and wake-up (another process writes every %ld us)\n",
           (cpu_us() - c0) / n, gap_ns / 1000);
    waitpid(child, NULL, 0);
    return 0;
}
