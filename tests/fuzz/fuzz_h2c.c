/* Fuzzes the h2c upgrade request a client may start an http2 connection
 * with (proto/h2c.c): whatever it says, the pieces it hands out lie
 * within the input, and the settings within their room. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/h2c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void within(const struct proto_str *s, const uint8_t *p, size_t n)
{
    if (s->n > 0 && ((const uint8_t *)s->p < p ||
                     (const uint8_t *)s->p + s->n > p + n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size > 0 ? size : 1);
    struct h2c_upgrade u;
    ssize_t n;

    memcpy(p, data, size);
    n = h2c_upgrade_read(p, size, &u);
    if (n > (ssize_t)size)
        abort();
    if (n > 0) {
        within(&u.parts.method, p, (size_t)n);
        within(&u.parts.path, p, (size_t)n);
        within(&u.host, p, (size_t)n);
        for (unsigned i = 0; i < u.parts.nheaders; i++) {
            within(&u.parts.headers[i][0], p, (size_t)n);
            within(&u.parts.headers[i][1], p, (size_t)n);
            (void)h2c_connection_header(&u.parts.headers[i][0]);
        }
        if (u.settings_len > sizeof(u.settings))
            abort();
    }
    free(p);
    return 0;
}
