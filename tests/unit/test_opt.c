/* Declared options and the command line that sets them. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "conf/cli.h"
#include "conf/settings.h"
#include "core/log.h"
#include "proto/proto.h"

static char err[1024];

static const struct opt_decl decls[] = {
    { "sleep", OPT_FLOAT, "1", "s", 0, 100 },
    { "before", OPT_BOOL, "true", "b", 0, 0 },
    { "warmup", OPT_INT, "0", "w", 0, 1000 },
    { "message", OPT_STR, "oops", "m", 0, 0 },
    { 0 },
};

Test(opt, defaults_are_parsed_from_their_text)
{
    union opt_val v[OPT_MAX];

    opt_defaults(decls, v);
    cr_assert_float_eq(v[0].f, 1.0, 1e-12);
    cr_assert(v[1].b);
    cr_assert_eq(v[2].i, 0);
    cr_assert_str_eq(v[3].s, "oops");
    opt_free(decls, v);
}

Test(opt, booleans_take_a_value_both_ways)
{
    union opt_val v = { 0 };

    for (const char *const *t = (const char *const[]){ "true", "YES", "on", "1", NULL };
         *t; t++) {
        cr_assert_eq(opt_parse(&decls[1], *t, &v, err, sizeof(err)), 0);
        cr_assert(v.b, "%s", *t);
    }
    for (const char *const *t = (const char *const[]){ "false", "No", "off", "0", NULL };
         *t; t++) {
        cr_assert_eq(opt_parse(&decls[1], *t, &v, err, sizeof(err)), 0);
        cr_assert(!v.b, "%s", *t);
    }
    cr_assert_eq(opt_parse(&decls[1], "maybe", &v, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "true or false") != NULL);
}

Test(opt, numbers_are_checked_for_form_and_range)
{
    union opt_val v = { 0 };

    cr_assert_eq(opt_parse(&decls[0], "0.5", &v, err, sizeof(err)), 0);
    cr_assert_float_eq(v.f, 0.5, 1e-12);
    cr_assert_eq(opt_parse(&decls[0], "abc", &v, err, sizeof(err)), -EINVAL);
    cr_assert_eq(opt_parse(&decls[0], "", &v, err, sizeof(err)), -EINVAL);
    cr_assert_eq(opt_parse(&decls[0], "nan", &v, err, sizeof(err)), -EINVAL);
    cr_assert_eq(opt_parse(&decls[0], "101", &v, err, sizeof(err)), -EINVAL);
    cr_assert_eq(opt_parse(&decls[2], "1.5", &v, err, sizeof(err)), -EINVAL);
    cr_assert_eq(opt_parse(&decls[2], "-1", &v, err, sizeof(err)), -EINVAL);
    cr_assert_eq(opt_parse(&decls[2], "10", &v, err, sizeof(err)), 0);
    cr_assert_eq(v.i, 10);
}

Test(opt, names_match_with_dashes_or_underscores)
{
    static const struct opt_decl d[] = { { "overwrite_host_header", OPT_BOOL, "false", "", 0, 0 },
                                         { 0 } };

    cr_assert_eq(opt_find(d, "overwrite-host-header"), 0);
    cr_assert_eq(opt_find(d, "overwrite_host_header"), 0);
    cr_assert_eq(opt_find(d, "overwrite"), -1);
}

static enum cli_result parse(struct settings *st, const char *const *args)
{
    char *argv[32];
    int argc = 0;

    argv[argc++] = (char *)"vaurien";
    for (; *args != NULL; args++)
        argv[argc++] = (char *)*args;
    return cli_parse(argc, argv, 1, st, err, sizeof(err));
}

Test(cli, has_the_original_defaults)
{
    struct settings st;

    settings_init(&st);
    cr_assert_eq(parse(&st, (const char *const[]){ NULL }), CLI_RUN);
    cr_assert_str_eq(st.proxy.host, "localhost");
    cr_assert_eq(st.proxy.port, 8000);
    cr_assert_str_eq(st.backend.host, "localhost");
    cr_assert_eq(st.backend.port, 80);
    cr_assert_str_eq(st.protocol, "tcp");
    cr_assert_str_eq(st.behavior, "100:dummy");
    cr_assert_float_eq(st.timeout, 30, 1e-9);
    cr_assert_eq(st.backlog, 8192);
    cr_assert(!st.stay_connected);
    cr_assert(!st.seed_set);
    settings_deinit(&st);
}

Test(cli, sets_flags_and_behavior_options_in_both_spellings)
{
    struct settings st;
    int delay = behav_find("delay");

    settings_init(&st);
    cr_assert_eq(parse(&st, (const char *const[]){
                                "--proxy", "[::1]:6565", "--backend=127.0.0.1:6379",
                                "--behavior", "5:error,10:delay",
                                "--behavior-delay-sleep", "0.5",
                                "--behavior-delay-before=false", "--stay-connected",
                                "--timeout", "2.5", "--seed", "99", "--backlog", "16",
                                "--protocol-tcp-buffer", "1024", NULL }),
                 CLI_RUN, "%s", err);
    cr_assert_str_eq(st.proxy.host, "::1");
    cr_assert_eq(st.backend.port, 6379);
    cr_assert_eq(st.mix.n, 2);
    cr_assert_float_eq(st.behav[delay].vals[0].f, 0.5, 1e-9);
    cr_assert(!st.behav[delay].vals[1].b);
    cr_assert(st.stay_connected);
    cr_assert_float_eq(st.timeout, 2.5, 1e-9);
    cr_assert(st.seed_set);
    cr_assert_eq(st.seed, 99);
    cr_assert_eq(st.backlog, 16);
    cr_assert_eq(st.proto[proto_find("tcp")][0].i, 1024);
    settings_deinit(&st);
}

Test(cli, a_boolean_option_can_be_set_back_to_true)
{
    struct settings st;
    int delay = behav_find("delay");

    settings_init(&st);
    cr_assert_eq(parse(&st, (const char *const[]){ "--behavior-delay-before", "false",
                                                   "--behavior-delay-before", "true",
                                                   NULL }),
                 CLI_RUN);
    cr_assert(st.behav[delay].vals[1].b);
    settings_deinit(&st);
}

Test(cli, wrong_flags_are_named_in_one_line)
{
    static const struct {
        const char *args[4];
        const char *says;
    } cases[] = {
        { { "--nope", NULL }, "unrecognized argument '--nope'" },
        { { "--proxy", NULL }, "--proxy expects a value" },
        { { "--proxy", "nope", NULL }, "--proxy: Expected HOST:PORT" },
        { { "--behavior", "abc", NULL }, "You need to use percentage:name" },
        { { "--behavior", "150:delay", NULL }, "100 or less" },
        { { "--behavior", "10:zzz", NULL }, "'zzz' is an unknown behavior" },
        { { "--protocol", "gopher", NULL }, "unknown protocol" },
        { { "--timeout", "-1", NULL }, "--timeout" },
        { { "--behavior-delay-sleep", "x", NULL }, "takes a number" },
        { { "--behavior-delay-nope", "1", NULL }, "unrecognized argument" },
        { { "--log-level", "loud", NULL }, "--log-level" },
        { { "--seed", "-3", NULL }, "--seed" },
        { { "stray", NULL }, "unrecognized argument 'stray'" },
        { { "--config", "/nonexistent/v.ini", NULL }, "/nonexistent/v.ini" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct settings st;
        settings_init(&st);
        err[0] = '\0';
        cr_assert_eq(parse(&st, cases[i].args), CLI_ERROR, "case %zu accepted", i);
        cr_assert(strstr(err, cases[i].says) != NULL, "case %zu: '%s'", i, err);
        cr_assert(strchr(err, '\n') == NULL, "case %zu: not one line", i);
        settings_deinit(&st);
    }
}
