/* wb_time.c — parsing times written by people (ISO-8601), strictly. */
#include "wb_time.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wb_util.h"

/* Reads exactly n digits at *p. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

int wb_time_parse_iso8601(const char *s, int64_t *ms, char *errstr, size_t errstr_size)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0, off_min = 0;
    struct tm tm;

    if (!s || !*s) goto bad;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        goto bad;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || y < 1970) {
        wb_set_err(errstr, errstr_size, "invalid time \"%s\": no such date", s);
        return -1;
    }
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi)) goto bad;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec)) goto bad;
            if (*p == '.' || *p == ',') {
                int scale = 100, any = 0;
                p++;
                while (isdigit((unsigned char)*p)) {
                    frac_ms += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                    any = 1;
                }
                if (!any) goto bad;
            }
        }
        if (h > 23 || mi > 59 || sec > 60) {
            wb_set_err(errstr, errstr_size, "invalid time \"%s\": no such time of day", s);
            return -1;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (digits(&p, 2, &oh)) goto bad;
            if (*p == ':') p++;
            if (digits(&p, 2, &om) || oh > 23 || om > 59) goto bad;
            off_min = sign * (oh * 60 + om);
        }
    }
    if (*p) goto bad;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *ms = ((int64_t)timegm(&tm) - (int64_t)off_min * 60) * 1000 + frac_ms;
    return 0;
bad:
    wb_set_err(errstr, errstr_size,
               "invalid time \"%s\": expected ISO-8601 like 2026-11-28T16:40:00Z or "
               "2026-11-28T17:40:00+01:00",
               s ? s : "");
    return -1;
}
