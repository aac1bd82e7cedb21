/* test_proc.c — free loopback ports and the child processes an integration test starts. */
#include "test_proc.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "wb_util.h"

int wb_test_free_port(void)
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

void wb_test_die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127); /* the parent died before prctl */
}

pid_t wb_test_spawn(const char *const *argv, const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        wb_test_die_with_parent(parent);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int wb_test_wait_pid(pid_t pid, int timeout_ms, int64_t *elapsed_ms)
{
    int64_t t0 = wb_time_mono_ms();
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (elapsed_ms) *elapsed_ms = wb_time_mono_ms() - t0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
        }
        if (wb_time_mono_ms() - t0 > timeout_ms) return -1;
        usleep(10000);
    }
}

int wb_test_http_get(int port, const char *path, char *buf, size_t size)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), code = -1;
    size_t got = 0;
    char req[256];

    if (size) buf[0] = '\0';
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0) return -1;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
        if (write(fd, req, (size_t)n) == n) {
            ssize_t r;
            while (got + 1 < size && (r = read(fd, buf + got, size - 1 - got)) > 0)
                got += (size_t)r;
            buf[got] = '\0';
            if (got > 12) code = atoi(buf + 9);
        }
    }
    close(fd);
    return code;
}

void wb_test_dump_file(const char *path)
{
    char line[1024];
    FILE *f = fopen(path, "r");
    if (!f) return;
    fprintf(stderr, "---- %s ----\n", path);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

void wb_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int64_t wb_test_peak_rss(pid_t pid)
{
    char path[64], line[256];
    int64_t kb = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %" SCNd64 " kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

int wb_test_asan(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 1;
#else
    return 0;
#endif
#else
    return 0;
#endif
}
