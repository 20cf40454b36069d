/* ALPN lists passed from a client's relay to the backend's (net/tls.c):
 * the one piece of a ClientHello the proxy reads itself. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/tls.h"

/* An extension body from names: a 2-byte length, then each name with its
 * length. */
static size_t ext_of(const char *const *names, unsigned char *out)
{
    size_t n = 2;

    for (; *names != NULL; names++) {
        out[n++] = (unsigned char)strlen(*names);
        memcpy(out + n, *names, strlen(*names));
        n += strlen(*names);
    }
    out[0] = (unsigned char)((n - 2) >> 8);
    out[1] = (unsigned char)(n - 2);
    return n;
}

Test(tls_alpn, every_name_passes_when_the_protocol_reads_any)
{
    const char *names[] = { "h2", "http/1.1", "foo", NULL };
    unsigned char ext[64], out[64];
    size_t n = ext_of(names, ext);

    cr_assert_eq(tls_alpn_filter(ext, n, false, out, sizeof(out)), n - 2);
    cr_assert_eq(memcmp(out, ext + 2, n - 2), 0);
}

Test(tls_alpn, only_http1_names_pass_for_the_http_framer)
{
    const char *names[] = { "h2", "http/1.1", "http/1.0", "http/1.2", NULL };
    unsigned char ext[64], out[64];
    size_t n = ext_of(names, ext);

    cr_assert_eq(tls_alpn_filter(ext, n, true, out, sizeof(out)), 18);
    cr_assert_eq(memcmp(out, "\x08http/1.1\x08http/1.0", 18), 0);
    const char *h2[] = { "h2", NULL };
    n = ext_of(h2, ext);
    cr_assert_eq(tls_alpn_filter(ext, n, true, out, sizeof(out)), 0);
}

Test(tls_alpn, a_malformed_extension_passes_nothing)
{
    unsigned char out[64];
    /* list length off by one, a name past the end, an empty name, too
     * short */
    cr_assert_eq(tls_alpn_filter((const unsigned char *)"\x00\x04\x02h2", 5, false,
                                 out, sizeof(out)), 0);
    cr_assert_eq(tls_alpn_filter((const unsigned char *)"\x00\x03\x05h2", 5, false,
                                 out, sizeof(out)), 0);
    cr_assert_eq(tls_alpn_filter((const unsigned char *)"\x00\x01\x00", 3, false,
                                 out, sizeof(out)), 0);
    cr_assert_eq(tls_alpn_filter((const unsigned char *)"\x00", 1, false,
                                 out, sizeof(out)), 0);
}

Test(tls_alpn, a_list_larger_than_the_room_passes_nothing)
{
    const char *names[] = { "abcdefghij", "klmnopqrst", NULL };
    unsigned char ext[64], out[64];
    size_t n = ext_of(names, ext);

    cr_assert_eq(tls_alpn_filter(ext, n, false, out, 15), 0);
    cr_assert_eq(tls_alpn_filter(ext, n, false, out, 22), 22);
}
