/* Test client for `mptcp run`: dials HOST PORT (IPv4) over TCP with libc's
 * socket(), sends an HTTP/1.0 request and prints the reply. With a third
 * argument `fork`, it then forks a child that execs this program again
 * (without `fork`) and exits with the child's status if its own dial worked.
 * Built with `cc -static` by the tests, so LD_PRELOAD cannot reach it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int dial(const char *host, const char *port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "dial: bad address %s\n", host);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("dial");
        return 1;
    }
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        perror("dial: write");
        return 1;
    }
    char buf[512];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    close(fd);
    return n < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dial HOST PORT [fork]\n");
        return 2;
    }
    int rc = dial(argv[1], argv[2]);
    if (rc != 0 || argc < 4 || strcmp(argv[3], "fork") != 0)
        return rc;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], argv[1], argv[2], (char *)NULL);
        perror("exec");
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
        return 1;
    return WEXITSTATUS(status);
}
