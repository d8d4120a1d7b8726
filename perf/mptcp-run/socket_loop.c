/* socket() per second, for `mptcp run`'s cost: creates and closes COUNT
 * sockets of KIND, ROUNDS times, and prints the median rate.
 *   tcp:   socket(AF_INET, SOCK_STREAM, 0)            (what trace/preload convert)
 *   mptcp: socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP) (the conversion's own cost, untraced)
 *   udp:   socket(AF_INET, SOCK_DGRAM, 0)             (a socket the filter lets through) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: socket_loop tcp|mptcp|udp COUNT ROUNDS\n");
        return 2;
    }
    int type = SOCK_STREAM, proto = 0;
    if (strcmp(argv[1], "mptcp") == 0)
        proto = 262;
    else if (strcmp(argv[1], "udp") == 0)
        type = SOCK_DGRAM;
    else if (strcmp(argv[1], "tcp") != 0) {
        fprintf(stderr, "socket_loop: unknown kind %s\n", argv[1]);
        return 2;
    }
    long count = atol(argv[2]);
    int rounds = atoi(argv[3]);
    if (count <= 0 || rounds <= 0 || rounds > 100) {
        fprintf(stderr, "socket_loop: bad COUNT or ROUNDS\n");
        return 2;
    }
    double rates[100];
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        for (long i = 0; i < count; i++) {
            int fd = socket(AF_INET, type, proto);
            if (fd < 0) {
                perror("socket");
                return 1;
            }
            close(fd);
        }
        rates[r] = count / (now() - t0);
    }
    qsort(rates, rounds, sizeof rates[0], cmp);
    /* The first socket's protocol, to show what the loop really made. */
    int fd = socket(AF_INET, type, proto);
    int got = 0;
    socklen_t len = sizeof got;
    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &got, &len);
    printf("%s %.0f %d\n", argv[1], rates[rounds / 2], got);
    return 0;
}
