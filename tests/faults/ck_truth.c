/* ck_truth.c — reading and writing `wbctl load` ground-truth files. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "wb_util.h"

#define SHOW_MAX 10 /* examples printed per kind of problem */

void ck_hex(char *out, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

void ck_keys_free(ck_key_t **table)
{
    ck_key_t *k, *tmp;

    HASH_ITER(hh, *table, k, tmp)
    {
        HASH_DEL(*table, k);
        free(k->id);
        free(k->thex);
        free(k->phex);
        free(k->chex);
        free(k);
    }
    *table = NULL;
}

void ck_truth_write_line(FILE *f, const char *id, int64_t version, const void *value, size_t len,
                         int is_delete)
{
    char *hex;

    if (is_delete) {
        fprintf(f, "%s\t%" PRId64 "\tdel\t-\n", id, version);
        return;
    }
    hex = malloc(2 * len + 1);
    if (!hex) {
        fprintf(stderr, "check: out of memory\n");
        exit(1);
    }
    ck_hex(hex, value, len);
    fprintf(f, "%s\t%" PRId64 "\tput\t%s\n", id, version, hex);
    free(hex);
}

/* Splits line (no newline) at tabs into exactly 4 fields. */
static int split4(char *line, char *field[4])
{
    int n = 0;

    field[n++] = line;
    for (char *p = line; *p; p++) {
        if (*p != '\t') continue;
        if (n == 4) return -1;
        *p = '\0';
        field[n++] = p + 1;
    }
    return n == 4 ? 0 : -1;
}

int ck_truth_load(const char *path, ck_key_t **table, int ordered, uint64_t *backwards)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, *field[4];
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = -1;
    /* Keys of this file, so that one file repeating a key is not "backwards". */
    ck_key_t *seen = NULL;

    if (!f) {
        fprintf(stderr, "check: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((len = getline(&line, &cap, f)) != -1) {
        ck_key_t *k, *s;
        int64_t ver;
        int is_del;

        lineno++;
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        if (len == 0) continue;
        if (split4(line, field) != 0 || field[0][0] == '\0' ||
            wb_parse_i64(field[1], strlen(field[1]), &ver) != 0 || ver <= 0 ||
            (strcmp(field[2], "put") != 0 && strcmp(field[2], "del") != 0)) {
            fprintf(stderr,
                    "check: %s:%zu: not a truth line (ID TAB VERSION TAB put|del TAB HEX)\n", path,
                    lineno);
            goto done;
        }
        is_del = strcmp(field[2], "del") == 0;
        HASH_FIND_STR(seen, field[0], s);
        HASH_FIND_STR(*table, field[0], k);
        if (!k) {
            k = calloc(1, sizeof(*k));
            if (!k || !(k->id = strdup(field[0]))) {
                free(k);
                fprintf(stderr, "check: out of memory\n");
                goto done;
            }
            HASH_ADD_KEYPTR(hh, *table, k->id, strlen(k->id), k);
        } else if (ordered && !s && k->tver >= ver) {
            if (*backwards < SHOW_MAX)
                fprintf(stderr,
                        "check: backwards: %s: version %" PRId64 " in %s is not above %" PRId64
                        " acknowledged by an earlier run\n",
                        k->id, ver, path, k->tver);
            (*backwards)++;
        }
        if (!s) {
            s = calloc(1, sizeof(*s));
            if (!s || !(s->id = strdup(field[0]))) {
                free(s);
                fprintf(stderr, "check: out of memory\n");
                goto done;
            }
            HASH_ADD_KEYPTR(hh, seen, s->id, strlen(s->id), s);
        }
        if (ver > k->tver) {
            free(k->thex);
            k->thex = NULL;
            if (!is_del && !(k->thex = strdup(field[3]))) {
                fprintf(stderr, "check: out of memory\n");
                goto done;
            }
            for (char *p = k->thex; p && *p; p++)
                if (*p >= 'A' && *p <= 'F') *p = (char)(*p - 'A' + 'a');
            k->tver = ver;
            k->tdel = is_del;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "check: %s: read error\n", path);
        goto done;
    }
    rc = 0;

done:
    ck_keys_free(&seen);
    free(line);
    fclose(f);
    return rc;
}
