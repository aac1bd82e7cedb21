/* wb_sigpipe.c — keeps SIGPIPE from killing the process while a library writes to a socket. */
#include "wb_sigpipe.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

static int sigpipe_pending(void)
{
    sigset_t pending;

    return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

void wb_sigpipe_block(wb_sigpipe_t *guard)
{
    sigset_t pipe_only;
    int saved = errno;

    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &guard->saved);
    /* Only if it was blocked already can one be pending now. */
    guard->was_pending = sigismember(&guard->saved, SIGPIPE) == 1 && sigpipe_pending();
    errno = saved;
}

void wb_sigpipe_restore(wb_sigpipe_t *guard)
{
    int saved = errno;

    if (!guard->was_pending && sigpipe_pending()) {
        static const struct timespec no_wait = {0, 0};
        sigset_t pipe_only;

        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        /* The thread-directed SIGPIPE of our failed write: take it off the
         * pending set before unblocking, so it is never delivered. */
        while (sigtimedwait(&pipe_only, NULL, &no_wait) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &guard->saved, NULL);
    errno = saved;
}
