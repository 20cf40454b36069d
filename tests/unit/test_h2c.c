/* The h2c upgrade request (proto/h2c.c): what is upgraded, what is not. */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "proto/h2c.h"

/* AAMAAABkAAQAoAAAAAIAAAAA: curl's HTTP2-Settings (3 settings, 18 bytes) */
#define CURL_UPGRADE \
    "GET /a?b=1 HTTP/1.1\r\nHost: example:80\r\nUser-Agent: curl\r\n" \
    "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" \
    "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"

static ssize_t read_str(const char *s, struct h2c_upgrade *u)
{
    return h2c_upgrade_read((const unsigned char *)s, strlen(s), u);
}

Test(h2c, reads_curls_upgrade_request)
{
    struct h2c_upgrade u;

    cr_assert_eq(read_str(CURL_UPGRADE "rest", &u),
                 (ssize_t)strlen(CURL_UPGRADE));
    cr_assert_eq(u.parts.method.n, 3);
    cr_assert(memcmp(u.parts.path.p, "/a?b=1", 6) == 0 && u.parts.path.n == 6);
    cr_assert(u.host.n == 10 && memcmp(u.host.p, "example:80", 10) == 0);
    cr_assert_eq(u.settings_len, 18);
    cr_assert_eq(u.settings[1], 3); /* SETTINGS_MAX_CONCURRENT_STREAMS */
    cr_assert_eq(u.settings[5], 100);
    cr_assert(!u.head);
}

Test(h2c, needs_more_until_the_blank_line_at_every_split)
{
    const char *req = CURL_UPGRADE;
    struct h2c_upgrade u;

    for (size_t n = 0; n < strlen(req); n++)
        cr_assert_eq(h2c_upgrade_read((const unsigned char *)req, n, &u), 0,
                     "at %zu", n);
}

Test(h2c, refuses_a_request_with_a_body)
{
    struct h2c_upgrade u;

    cr_assert_eq(read_str("POST / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: "
                          "\r\nContent-Length: 3\r\n\r\n", &u), -ENOTSUP);
    cr_assert_eq(read_str("POST / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: "
                          "\r\nTransfer-Encoding: chunked\r\n\r\n", &u),
                 -ENOTSUP);
    cr_assert_gt(read_str("POST / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: "
                          "\r\nContent-Length: 0\r\n\r\n", &u), 0);
}

Test(h2c, refuses_what_does_not_ask_h2c)
{
    struct h2c_upgrade u;

    cr_assert_eq(read_str("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &u), -EPROTO);
    cr_assert_eq(read_str("GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
                          "HTTP2-Settings: \r\n\r\n", &u), -EPROTO);
    cr_assert_eq(read_str("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", &u),
                 -EBADMSG); /* no HTTP2-Settings */
    cr_assert_eq(read_str("GET / HTTP/1.1\r\nUpgrade: h2c\r\n"
                          "HTTP2-Settings: a+b/\r\n\r\n", &u), -EBADMSG);
    cr_assert_gt(read_str("HEAD / HTTP/1.1\r\nUpgrade: foo, H2C\r\n"
                          "HTTP2-Settings: \r\n\r\n", &u), 0);
    cr_assert(u.head);
}

Test(h2c, gives_up_on_a_head_that_never_ends)
{
    static unsigned char big[H2C_HEAD_MAX + 2];
    struct h2c_upgrade u;

    memset(big, 'a', sizeof(big));
    cr_assert_eq(h2c_upgrade_read(big, sizeof(big), &u), -EMSGSIZE);
}

Test(h2c, names_the_connection_headers)
{
    struct proto_str te = { "TE", 2 }, accept = { "accept", 6 };

    cr_assert(h2c_connection_header(&te));
    cr_assert(!h2c_connection_header(&accept));
}
