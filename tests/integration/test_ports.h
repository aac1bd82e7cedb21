/* test_ports.h — a free loopback TCP port for a daemon a test starts, and its lifetime. */
#ifndef WB_TEST_PORTS_H
#define WB_TEST_PORTS_H

#include <signal.h>
#include <sys/prctl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* A TCP port nobody listens on right now (bound to port 0 and released), or
 * -1. Ephemeral ports are handed out in turn by the kernel, so two tests (or
 * two engineers' runs) on one machine do not collide the way a port derived
 * from the pid can. */
static inline int wb_test_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* Called in a forked child before exec: the daemon a test started is killed
 * when the test process dies, so a failed assertion (cmocka leaves the test
 * function without its cleanup) never leaves a daemon running. */
static inline void wb_test_die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127); /* the parent died before prctl */
}

#endif /* WB_TEST_PORTS_H */
