/* wb_time.h — parsing times written by people (ISO-8601). */
#ifndef WB_TIME_H
#define WB_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Parses "YYYY-MM-DD[THH:MM[:SS[.frac]]][Z|+HH:MM|-HH:MM|+HHMM]" (a space may
 * stand for T; no zone means UTC; years before 1970 are refused) into
 * milliseconds since the epoch. Returns 0, or -1 with the reason in errstr
 * (*ms untouched). Pure and reentrant. */
int wb_time_parse_iso8601(const char *s, int64_t *ms, char *errstr, size_t errstr_size);

#endif /* WB_TIME_H */
