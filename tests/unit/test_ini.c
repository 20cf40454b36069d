/* The original Vaurien's INI configuration. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/cli.h"
#include "conf/ini.h"
#include "core/log.h"
#include "proto/proto.h"

static char err[1024];

Test(ini, loads_every_section_of_the_original_layout)
{
    struct settings st;
    int delay = behav_find("delay"), error = behav_find("error");

    settings_init(&st);
    cr_assert_eq(ini_load_string("[vaurien]\n"
                                 "proxy = 127.0.0.1:7000\n"
                                 "backend = example.org:80\n"
                                 "protocol = tcp\n"
                                 "behavior = 20:delay,10:error\n"
                                 "stay_connected = true\n"
                                 "timeout = 5\n"
                                 "log_level = debug\n"
                                 "[behavior:delay]\n"
                                 "sleep = 0.2\n"
                                 "before = false\n"
                                 "[behavior:error]\n"
                                 "warmup = 3\n"
                                 "[protocol:tcp]\n"
                                 "buffer = 512\n",
                                 &st, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(st.proxy.port, 7000);
    cr_assert_str_eq(st.backend.host, "example.org");
    cr_assert_eq(st.mix.n, 2);
    cr_assert(st.stay_connected);
    cr_assert_float_eq(st.timeout, 5, 1e-9);
    cr_assert_eq(st.log_level, LOG_DEBUG);
    cr_assert_float_eq(st.behav[delay].vals[0].f, 0.2, 1e-9);
    cr_assert(!st.behav[delay].vals[1].b);
    cr_assert_eq(st.behav[error].vals[1].i, 3);
    cr_assert_eq(st.proto[proto_find("tcp")][0].i, 512);
    settings_deinit(&st);
}

Test(ini, substitutes_environment_variables)
{
    struct settings st;

    setenv("VAURIEN_TEST_PORT", "7123", 1);
    settings_init(&st);
    cr_assert_eq(ini_load_string("[vaurien]\nproxy = localhost:${VAURIEN_TEST_PORT}\n",
                                 &st, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(st.proxy.port, 7123);
    cr_assert_eq(ini_load_string("[vaurien]\nproxy = localhost:${VAURIEN_UNSET_XYZ}\n",
                                 &st, err, sizeof(err)),
                 -EINVAL);
    cr_assert(strstr(err, "VAURIEN_UNSET_XYZ") != NULL, "%s", err);
    settings_deinit(&st);
}

Test(ini, keeps_loading_the_originals_unsupported_keys)
{
    struct settings st;

    settings_init(&st);
    cr_assert_eq(ini_load_string("[vaurien]\npool_max_size = 10\n"
                                 "[statsd]\nenabled = true\n",
                                 &st, err, sizeof(err)),
                 0, "%s", err);
    settings_deinit(&st);
}

Test(ini, names_the_line_of_a_bad_value)
{
    static const struct {
        const char *text;
        const char *says;
    } cases[] = {
        { "[vaurien]\nproxy = 127.0.0.1:1\nbehavior = 200:delay\n", "line 3" },
        { "[vaurien]\nnope = 1\n", "unknown setting 'nope'" },
        { "[behavior:delay]\nsleep = soon\n", "takes a number" },
        { "[behavior:nope]\nx = 1\n", "unknown behavior" },
        { "[behavior:delay]\nnap = 1\n", "has no option 'nap'" },
        { "[other]\nx = 1\n", "unknown section" },
        { "[vaurien]\nthis is not ini\n", "line 2" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct settings st;
        settings_init(&st);
        cr_assert_eq(ini_load_string(cases[i].text, &st, err, sizeof(err)), -EINVAL,
                     "case %zu", i);
        cr_assert(strstr(err, cases[i].says) != NULL, "case %zu: %s", i, err);
        settings_deinit(&st);
    }
}

Test(ini, flags_given_on_the_command_line_win_over_the_file)
{
    char path[] = "/tmp/vaurien-test-XXXXXX"; /* mkstemp's template */
    int fd = mkstemp(path);
    const char text[] = "[vaurien]\nproxy = 127.0.0.1:7000\nbackend = 127.0.0.1:7001\n"
                        "[behavior:delay]\nsleep = 3\n";
    struct settings st;
    char *argv[] = { "vaurien", "--backend", "127.0.0.1:9999", "--config", path,
                     "--behavior-delay-sleep", "0.1", NULL };

    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
    close(fd);
    settings_init(&st);
    cr_assert_eq(cli_parse(7, argv, 1, &st, err, sizeof(err)), CLI_RUN, "%s", err);
    cr_assert_eq(st.proxy.port, 7000);   /* from the file */
    cr_assert_eq(st.backend.port, 9999); /* the flag wins, wherever it stands */
    cr_assert_float_eq(st.behav[behav_find("delay")].vals[0].f, 0.1, 1e-9);
    settings_deinit(&st);
    unlink(path);
}
