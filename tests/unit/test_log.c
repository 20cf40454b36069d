/* The logger: one line per event, libevent's own messages, reopening. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"

static char path[64];

static void setup(void)
{
    static int n;

    /* a file of this test process's own, made empty */
    snprintf(path, sizeof(path), "/tmp/vaurien-test-log-%d-%d", (int)getpid(), ++n);
    unlink(path);
    cr_assert_eq(log_init(path, LOG_DEBUG), 0);
}

static void teardown(void)
{
    log_deinit();
    unlink(path);
}

static char *slurp(const char *p)
{
    static char buf[65536];
    FILE *f = fopen(p, "r");
    size_t n;

    cr_assert(f != NULL);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(log, control_bytes_in_a_message_stay_on_its_line, .init = setup, .fini = teardown)
{
    char *text;

    log_info("proxy %s: created", "x\n2026-01-01 00:00:00 [1] [ERROR] forged\\");
    text = slurp(path);
    cr_assert(strstr(text, "proxy x\\x0a2026-01-01 00:00:00 [1] [ERROR] forged\\\\: "
                           "created\n") != NULL, "%s", text);
    cr_assert_eq(strchr(text, '\n'), text + strlen(text) - 1, "one line: %s", text);
}

Test(log, libevent_warnings_reach_the_log, .init = setup, .fini = teardown)
{
    struct event_config *cfg = event_config_new();
    struct event_base *b;

    event_set_log_callback(log_libevent);
    /* no method left: libevent warns, and makes no base */
    event_config_avoid_method(cfg, "epoll");
    event_config_avoid_method(cfg, "poll");
    event_config_avoid_method(cfg, "select");
    b = event_base_new_with_config(cfg);
    event_config_free(cfg);
    event_set_log_callback(NULL);
    cr_assert_null(b);
    cr_assert(strstr(slurp(path), "] libevent: ") != NULL, "%s", slurp(path));
}

Test(log, reopen_follows_a_moved_file, .init = setup, .fini = teardown)
{
    char moved[80];

    snprintf(moved, sizeof(moved), "%s.1", path);
    log_info("before");
    cr_assert_eq(rename(path, moved), 0);
    cr_assert_eq(log_reopen(), 0);
    log_info("after");
    cr_assert(strstr(slurp(moved), "before") != NULL);
    cr_assert(strstr(slurp(moved), "after") == NULL);
    cr_assert(strstr(slurp(path), "after") != NULL);
    unlink(moved);
}
