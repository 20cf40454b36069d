/* The -watch watcher: what changes wake it, what does not, on a real loop
 * over a real folder. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/watch.h"

static char root[128];

static void put(const char *name, const char *text)
{
    char p[256];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", root, name);
    f = fopen(p, "w");
    cr_assert(f != NULL, "%s", p);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    static int n;

    snprintf(root, sizeof(root), "/tmp/vaurien-test-watch-%d-%d", (int)getpid(),
             ++n);
    cr_assert_eq(mkdir(root, 0700), 0);
}

static void teardown(void)
{
    char cmd[200];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

static int calls;

static void count(void *arg)
{
    (void)arg;
    calls++;
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static void in_root(const char *fmt, const char *a, const char *b)
{
    char cmd[600], what[400];

    snprintf(what, sizeof(what), fmt, a, b);
    snprintf(cmd, sizeof(cmd), "cd '%s' && %s", root, what);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

TestSuite(watch, .init = setup, .fini = teardown);

Test(watch, a_missing_file_and_an_empty_one_have_different_digests)
{
    char p[256];
    const char *paths[] = {p};
    unsigned long long missing, empty;

    snprintf(p, sizeof(p), "%s/c.json", root);
    missing = watch_digest(paths, 1);
    put("c.json", "");
    empty = watch_digest(paths, 1);
    cr_assert_neq(missing, empty);
    put("c.json", "[]");
    cr_assert_neq(watch_digest(paths, 1), empty);
    put("c.json", "");
    cr_assert_eq(watch_digest(paths, 1), empty);
}

Test(watch, a_configmap_swap_wakes_it_once_and_other_names_do_not)
{
    struct event_base *base = event_base_new();
    struct watch *w;
    char p[256], err[300];

    /* the kubelet's layout: config.json -> ..data/config.json -> ..v1/ */
    in_root("mkdir ..v1 && echo '[1]' > ..v1/config.json && ln -s ..v1 ..data "
            "&& ln -s ..data/config.json config.json%s%s",
            "", "");
    snprintf(p, sizeof(p), "%s/config.json", root);
    calls = 0;
    w = watch_create(base, p, count, NULL, err, sizeof(err));
    cr_assert(w != NULL, "%s", err);

    put("vaurien.log", "a log line\n"); /* another name in the folder */
    run_for(base, 300);
    cr_assert_eq(calls, 0);

    in_root(
        "mkdir ..v2 && echo '[2]' > ..v2/config.json && ln -s ..v2 ..data_tmp "
        "&& mv -T ..data_tmp ..data && rm -rf ..v1%s%s",
        "", "");
    run_for(base, 400);
    cr_assert_eq(calls, 1);

    /* the new target folder is watched: written in place there too */
    in_root("echo '[3]' > ..v2/config.json%s%s", "", "");
    run_for(base, 400);
    cr_assert_eq(calls, 2);

    /* a swap to the same bytes changes nothing */
    in_root("mkdir ..v3 && cp ..v2/config.json ..v3/ && ln -s ..v3 ..data_tmp "
            "&& mv -T ..data_tmp ..data && rm -rf ..v2%s%s",
            "", "");
    run_for(base, 400);
    cr_assert_eq(calls, 2);
    watch_destroy(w);
    event_base_free(base);
}

Test(watch, the_files_it_is_given_count_and_a_burst_is_one_call)
{
    struct event_base *base = event_base_new();
    struct watch *w;
    char p[256], s[256], err[300];
    const char *scripts[] = {s};

    put("c.json", "{}");
    put("x.lua", "return {}");
    snprintf(p, sizeof(p), "%s/c.json", root);
    snprintf(s, sizeof(s), "%s/x.lua", root);
    calls = 0;
    w = watch_create(base, p, count, NULL, err, sizeof(err));
    cr_assert(w != NULL, "%s", err);
    put("x.lua", "return { }");
    run_for(base, 300);
    cr_assert_eq(calls, 0); /* not given yet */
    watch_set_files(w, scripts, 1);
    for (int i = 0; i < 5; i++) /* a burst: settles into one call */
        put("x.lua", i % 2 ? "return {1}" : "return {2}");
    run_for(base, 400);
    cr_assert_eq(calls, 1);
    watch_destroy(w);
    event_base_free(base);
}

Test(watch, a_folder_that_does_not_exist_is_refused)
{
    struct event_base *base = event_base_new();
    char err[300];

    cr_assert_null(watch_create(base, "/nonexistent-vaurien/c.json", count,
                                NULL, err, sizeof(err)));
    cr_assert(strstr(err, "-watch: cannot watch the folder of "
                          "/nonexistent-vaurien/c.json") != NULL,
              "%s", err);
    event_base_free(base);
}
