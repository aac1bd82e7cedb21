/* test_proc.h — free loopback ports and the child processes an integration test starts. */
#ifndef WB_TEST_PROC_H
#define WB_TEST_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A TCP port nobody listens on right now (bound to port 0 and released), or
 * -1. Ephemeral ports are handed out in turn by the kernel, so two tests (or
 * two engineers' runs) on one machine do not collide the way a port derived
 * from the pid can. */
int wb_test_free_port(void);

/* Called in a forked child before exec: the daemon a test started is killed
 * when the test process dies, so a failed assertion (cmocka leaves the test
 * function without its cleanup) never leaves a daemon running. */
void wb_test_die_with_parent(pid_t parent);

/* Forks and execs argv[0] with argv (NULL-terminated), its stdout and
 * stderr appended to log, dying with the test process. Returns the child's
 * pid, or -1 when fork fails. */
pid_t wb_test_spawn(const char *const *argv, const char *log);

/* Waits for pid up to timeout_ms; returns its exit status, -1 on timeout
 * (pid still runs) or -2 when a signal killed it; *elapsed_ms (may be NULL)
 * = time waited. */
int wb_test_wait_pid(pid_t pid, int timeout_ms, int64_t *elapsed_ms);

/* GET path from 127.0.0.1:port over HTTP/1.0; the whole response (status
 * line, headers, body) into buf (NUL-terminated, cut to size). Returns the
 * HTTP status, or -1 when nothing answered within 2 s. */
int wb_test_http_get(int port, const char *path, char *buf, size_t size);

/* Copies the file at path to stderr under a "---- path ----" line (a
 * child's log, on failure); nothing when it cannot be read. */
void wb_test_dump_file(const char *path);

void wb_test_sleep_ms(int ms);
/* Peak resident memory (VmHWM of /proc/<pid>/status) of pid in bytes, or
 * -1 when it cannot be read. */
int64_t wb_test_peak_rss(pid_t pid);
/* 1 when the tests (and the daemons they start, from the same build) are
 * built with AddressSanitizer: its allocator keeps freed memory in
 * quarantine, so resident memory says nothing about what a daemon holds
 * and memory bounds are not checked there. */
int wb_test_asan(void);

#endif /* WB_TEST_PROC_H */
