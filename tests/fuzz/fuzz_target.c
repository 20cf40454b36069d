/* Fuzzes targets (behav/target.c, behav/schedule.c): a matcher's text
 * (--behavior-NAME-match, "match" in the API) and what it is matched
 * against, a window and a schedule phase's "for". The input is split at
 * NUL bytes: matcher, window, for, then the request's parts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "behav/schedule.h"
#include "behav/target.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next NUL-terminated piece of the input (the rest when none). */
static const char *piece(const char **at, const char *end)
{
    const char *p = *at;
    const char *nul = memchr(p, '\0', (size_t)(end - p));

    *at = nul != NULL ? nul + 1 : end;
    return p;
}

static struct proto_str str(const char *s)
{
    return (struct proto_str){ s, strlen(s) };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), err[512];
    const char *at = buf, *end;
    union opt_val vals[TARGET_NOPTS];
    struct target_state st = { 0 };
    struct proto_parts parts;
    struct target_req r = { &parts, NULL };
    enum schedule_for kind;
    double amount;

    memcpy(buf, data, size);
    buf[size] = '\0';
    end = buf + size;
    opt_defaults(target_opts, vals);
    opt_parse(&target_opts[TARGET_MATCH], piece(&at, end), &vals[TARGET_MATCH],
              err, sizeof(err));
    opt_parse(&target_opts[TARGET_WINDOW], piece(&at, end), &vals[TARGET_WINDOW],
              err, sizeof(err));
    schedule_parse_for(piece(&at, end), &kind, &amount, err, sizeof(err));
    memset(&parts, 0, sizeof(parts));
    parts.command = str(piece(&at, end));
    parts.key = str(piece(&at, end));
    parts.method = str(piece(&at, end));
    parts.path = str(piece(&at, end));
    parts.statement = str(piece(&at, end));
    parts.headers[0][0] = str(piece(&at, end));
    parts.headers[0][1] = str(piece(&at, end));
    parts.nheaders = 1;
    r.client = piece(&at, end);
    if (target_check(vals, NULL, false, err, sizeof(err)) == 0) {
        target_state_reset(&st, 0);
        for (int i = 0; i < 4; i++)
            target_pass(vals, &st, &r, i * 10.0);
        target_state_deinit(&st);
    }
    opt_free(target_opts, vals);
    free(buf);
    return 0;
}
