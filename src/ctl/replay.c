/*
 * ctl/replay: a journal's fault events into a replay (see replay.h).
 */
#include "ctl/replay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "behav/replay.h"
#include "ctl/json.h"

#define LINE_MAX_BYTES (64u << 10) /* a journal line is under 2 KiB */

/* Adds one event (the n-th, for messages). Returns 0, 1 for an event that
 * is not a request's fault (skipped), or -1 with err. */
static int add_event(struct replay *r, json_t *e, const char *what,
                     size_t n, char *err, size_t errlen)
{
    const char *kind = json_string_value(json_object_get(e, "kind"));
    const char *proxy = json_string_value(json_object_get(e, "proxy"));
    const char *name = json_string_value(json_object_get(e, "behavior"));
    json_t *conn = json_object_get(e, "conn"), *index = json_object_get(e, "index");
    json_t *opts = json_object_get(e, "options"), *held, *code;
    struct behav_inst b;
    char *key, why[300];
    const char *okey;
    json_t *v;
    int behav, inst, rc;

    if (!json_is_object(e)) {
        snprintf(err, errlen, "%s %zu is not a JSON object", what, n);
        return -1;
    }
    if (kind == NULL) {
        snprintf(err, errlen, "%s %zu is not a journal event (no \"kind\")",
                 what, n);
        return -1;
    }
    if (strcmp(kind, "fault") != 0 || index == NULL)
        return 1;
    if (proxy == NULL || name == NULL || !json_is_integer(conn) ||
        !json_is_integer(index) || json_integer_value(conn) < 0 ||
        json_integer_value(index) < 1 || (opts != NULL && !json_is_object(opts))) {
        snprintf(err, errlen, "%s %zu: a fault needs proxy, conn, index, "
                 "behavior (and options as an object)", what, n);
        return -1;
    }
    behav = behav_find(name);
    if (behav < 0) {
        snprintf(err, errlen, "%s %zu: the '%s' behavior is not loaded", what, n,
                 name);
        return -1;
    }
    /* the HTTP status drawn then, not a new draw from the list */
    opts = opts != NULL ? json_deep_copy(opts) : json_object();
    code = json_object_get(e, "code");
    if (json_is_integer(code) && json_integer_value(code) > 0 &&
        opt_find(behav_at(behav)->opts, "status") >= 0)
        json_object_set_new(opts, "status",
                            json_sprintf("%d", (int)json_integer_value(code)));
    key = json_dumps(opts, JSON_COMPACT | JSON_SORT_KEYS);
    if (key == NULL || opts == NULL) {
        json_decref(opts);
        free(key);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    inst = replay_find_inst(r, behav, key);
    if (inst < 0) {
        behav_inst_init(&b, behav_at(behav));
        json_object_foreach(opts, okey, v) {
            if (ctl_inst_set(&b, okey, v, why, sizeof(why)) == -EINVAL) {
                snprintf(err, errlen, "%s %zu: %s", what, n, why);
                behav_inst_deinit(&b);
                json_decref(opts);
                free(key);
                return -1;
            } /* an option this build does not know: left out */
        }
        /* it acted when recorded: a warmup it had passed is over */
        int w = opt_find(b.ops->opts, "warmup");
        if (w >= 0)
            b.vals[w].i = 0;
        inst = replay_add_inst(r, behav, key, &b);
        if (inst < 0)
            behav_inst_deinit(&b);
    }
    free(key);
    json_decref(opts);
    held = json_object_get(e, "held_ms");
    rc = inst < 0 ? inst
                  : replay_add(r, proxy, (uint64_t)json_integer_value(conn),
                               (uint64_t)json_integer_value(index), inst,
                               json_is_number(held) &&
                                       json_number_value(held) >= 0
                                   ? json_number_value(held) : -1);
    if (rc < 0) {
        snprintf(err, errlen, rc == -ENOSPC
                     ? "%s %zu: a replay holds at most 1000000 faults, "
                       "1024 distinct behaviors and 1024 proxies"
                     : "%s %zu: out of memory", what, n);
        return -1;
    }
    return 0;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/* A whole JSON value: a list of events, or GET /events' {"events": [...]}.
 * Returns 0, -1 with err, or 1 when j is neither (then: lines). */
static int add_list(struct replay *r, json_t *j, size_t *events, char *err,
                    size_t errlen)
{
    json_t *list = json_is_array(j) ? j : json_object_get(j, "events");
    json_t *e;
    size_t i;

    if (json_is_object(j) && list != NULL && !json_is_array(list)) {
        snprintf(err, errlen, "\"events\" is not a list of events");
        return -1;
    }
    if (!json_is_array(list))
        return 1;
    *events = json_array_size(list);
    json_array_foreach(list, i, e)
        if (add_event(r, e, "event", i + 1, err, errlen) < 0)
            return -1;
    return 0;
}

struct replay *ctl_replay_parse(const char *text, size_t len, char *err,
                                size_t errlen)
{
    struct replay *r = replay_create();
    json_t *j;
    size_t line = 0, at = 0, events = 0;
    int rc;

    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    j = len > 0 ? json_loadb(text, len, 0, NULL) : NULL;
    rc = j != NULL ? add_list(r, j, &events, err, errlen) : 1;
    json_decref(j);
    while (rc == 1 && at < len) { /* JSON lines */
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        json_error_t je;
        line++;
        if (!blank(text + at, end - at)) {
            json_t *e = json_loadb(text + at, end - at, 0, &je);
            if (e == NULL) {
                snprintf(err, errlen, "line %zu: %s", line, je.text);
                replay_destroy(r);
                return NULL;
            }
            rc = add_event(r, e, "line", line, err, errlen);
            json_decref(e);
            events++;
            if (rc < 0)
                break;
            rc = 1;
        }
        if (nl == NULL)
            break;
        at = end + 1;
    }
    if (rc >= 0 && events == 0) {
        snprintf(err, errlen, "the journal holds no events");
        rc = -1;
    }
    if (rc < 0) {
        replay_destroy(r);
        return NULL;
    }
    return r;
}

int ctl_replay_load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    struct replay *r = NULL;
    char *text = NULL, why[400];
    size_t len = 0, cap = 0;
    int rc = 0;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    for (;;) { /* the file whole: a journal of 1,000,000 events is ~600 MB,
                  read once at start */
        size_t got;
        if (len + LINE_MAX_BYTES + 1 > cap) {
            size_t ncap = cap ? cap * 2 : (1u << 20);
            char *t = realloc(text, ncap);
            if (t == NULL) {
                rc = -ENOMEM;
                snprintf(err, errlen, "%s: out of memory", path);
                goto out;
            }
            text = t;
            cap = ncap;
        }
        got = fread(text + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        rc = -EIO;
        snprintf(err, errlen, "%s: read error", path);
        goto out;
    }
    r = ctl_replay_parse(text, len, why, sizeof(why));
    if (r == NULL) {
        rc = -EINVAL;
        snprintf(err, errlen, "%s: %s", path, why);
        goto out;
    }
    replay_set(r);
out:
    free(text);
    fclose(f);
    return rc;
}
