/* HOST:PORT parsing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/addr.h"

static char err[512];

Test(addr, parses_a_name_and_port)
{
    struct addr a;

    cr_assert_eq(addr_parse("localhost:8000", &a, err, sizeof(err)), 0);
    cr_assert_str_eq(a.host, "localhost");
    cr_assert_eq(a.port, 8000);
}

Test(addr, parses_ipv4_and_bracketed_ipv6)
{
    struct addr a;
    char buf[64];

    cr_assert_eq(addr_parse("0.0.0.0:6565", &a, err, sizeof(err)), 0);
    cr_assert_str_eq(a.host, "0.0.0.0");
    cr_assert_eq(addr_parse("[::1]:8000", &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(a.host, "::1");
    cr_assert_eq(a.port, 8000);
    cr_assert_str_eq(addr_format(&a, buf, sizeof(buf)), "[::1]:8000");
}

Test(addr, an_empty_host_means_any_address)
{
    struct addr a;

    cr_assert_eq(addr_parse(":0", &a, err, sizeof(err)), 0);
    cr_assert_str_eq(a.host, "");
    cr_assert_eq(a.port, 0);
}

Test(addr, rejects_malformed_addresses_with_the_original_message)
{
    static const char *const bad[] = {
        "localhost", "localhost:", "localhost:http", "host:65536", "host:-1",
        "::1:80", "[::1]", "[::1]80", "[nothex]:80", "ho st:80", "[]:80",
        "host:+80",
    };
    struct addr a;

    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        cr_assert_eq(addr_parse(bad[i], &a, err, sizeof(err)), -EINVAL,
                     "'%s' was accepted", bad[i]);
        cr_assert(strncmp(err, "Expected HOST:PORT", 18) == 0, "%s", err);
    }
}
