/* Fuzzes the ALPN extension a client's relay reads from a ClientHello and
 * passes to the backend (net/tls.c tls_alpn_filter): what it writes must
 * be a well-formed list of names taken from the input, within the room. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *ext = malloc(size > 0 ? size : 1), out[255];

    memcpy(ext, data, size);
    for (int http1 = 0; http1 < 2; http1++) {
        size_t cap = size > 0 ? data[0] % sizeof(out) + 1 : sizeof(out);
        size_t n = tls_alpn_filter(ext, size, http1, out, cap), at = 0;
        if (n > cap)
            abort();
        while (at < n) {
            size_t name = out[at];
            if (name == 0 || at + 1 + name > n)
                abort();
            if (http1 && (name != 8 || memcmp(out + at + 1, "http/1.", 7) != 0))
                abort();
            at += 1 + name;
        }
    }
    free(ext);
    return 0;
}
