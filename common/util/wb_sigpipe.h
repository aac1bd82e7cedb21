/* wb_sigpipe.h — keeps SIGPIPE from killing the process while a library writes to a socket. */
#ifndef WB_SIGPIPE_H
#define WB_SIGPIPE_H

#include <signal.h>

/* A write(2) to a socket whose peer has closed raises SIGPIPE on the
 * writing thread, and its default action ends the process; a library must
 * not impose on its application to ignore it. These block it around the
 * writes of one call, the way libpq does where send() has no MSG_NOSIGNAL:
 * the write then fails with EPIPE, which the caller handles as an error.
 * Plain struct, on the caller's stack; one block/restore pair per use, on
 * one thread. */
typedef struct wb_sigpipe_s {
    sigset_t saved;  /* the thread's signal mask before */
    int was_pending; /* a SIGPIPE was pending already: not ours to consume */
} wb_sigpipe_t;

/* Blocks SIGPIPE on the calling thread, remembering the mask. */
void wb_sigpipe_block(wb_sigpipe_t *guard);

/* If a SIGPIPE became pending while blocked (a write of ours raised it),
 * consumes it; then restores the thread's mask. So the application never
 * sees it, whatever its disposition, and a SIGPIPE that was pending before
 * stays pending. Preserves errno. */
void wb_sigpipe_restore(wb_sigpipe_t *guard);

#endif /* WB_SIGPIPE_H */
