/* test_ports.h — a free loopback TCP port for a daemon a test starts. */
#ifndef WB_TEST_PORTS_H
#define WB_TEST_PORTS_H

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

#endif /* WB_TEST_PORTS_H */
