/* wb_sha1.h — SHA-1 (FIPS 180-4) of a byte string, as 40 lowercase hex digits. */
#ifndef WB_SHA1_H
#define WB_SHA1_H

#include <stddef.h>

/* Length of a hex digest plus its NUL. */
#define WB_SHA1_HEX_SIZE 41

/* Writes the SHA-1 of data[0 .. len) to out as 40 lowercase hex digits and
 * a NUL. A name for content (Redis names a script by it), not security.
 * data may be NULL when len is 0. Pure; any thread. */
void wb_sha1_hex(const void *data, size_t len, char out[WB_SHA1_HEX_SIZE]);

#endif /* WB_SHA1_H */
