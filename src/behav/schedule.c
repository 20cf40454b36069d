/*
 * schedule: phases of behaviors in sequence (see schedule.h).
 */
#include "behav/schedule.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int schedule_parse_for(const char *text, enum schedule_for *kind,
                       double *amount, char *err, size_t errlen)
{
    static const struct {
        const char *unit;
        enum schedule_for kind;
        double scale;
    } units[] = {
        { "requests", SCHEDULE_REQUESTS, 1 }, { "request", SCHEDULE_REQUESTS, 1 },
        { "ms", SCHEDULE_SECONDS, 1e-3 },     { "s", SCHEDULE_SECONDS, 1 },
        { "m", SCHEDULE_SECONDS, 60 },
    };
    char *end;
    double x;

    if (strpbrk(text, "xX") != NULL) /* strtod reads hex: "0x10" */
        goto bad;
    errno = 0;
    x = strtod(text, &end);
    if (end == text || errno != 0 || !isfinite(x) || x <= 0 || x > 1e12)
        goto bad;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        if (units[i].kind == SCHEDULE_REQUESTS && x != floor(x))
            goto bad;
        *kind = units[i].kind;
        *amount = x * units[i].scale;
        return 0;
    }
bad:
    snprintf(err, errlen, "\"for\" is \"N requests\" or a time "
             "(\"5s\", \"250ms\", \"2m\"), not '%s'", text);
    return -EINVAL;
}

struct schedule *schedule_create(double now)
{
    struct schedule *s = calloc(1, sizeof(*s));

    if (s != NULL)
        s->phase_start = now;
    return s;
}

void schedule_destroy(struct schedule *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->n; i++)
        behav_inst_deinit(&s->ph[i].inst);
    free(s->given);
    free(s);
}

int schedule_phase(struct schedule *s, double now)
{
    /* timed phases that ran out since the last request: the next one
     * began when the last ended, not now */
    while (s->cur < s->n && s->ph[s->cur].kind == SCHEDULE_SECONDS &&
           now - s->phase_start >= s->ph[s->cur].amount) {
        s->phase_start += s->ph[s->cur].amount;
        s->cur++;
        s->in_phase = 0;
    }
    return s->cur;
}

struct behav_inst *schedule_next(struct schedule *s, double now)
{
    struct schedule_phase *ph;

    if (schedule_phase(s, now) >= s->n)
        return NULL;
    ph = &s->ph[s->cur];
    s->in_phase++;
    if (ph->kind == SCHEDULE_REQUESTS && (double)s->in_phase >= ph->amount) {
        s->cur++; /* this request is its last */
        s->in_phase = 0;
        s->phase_start = now;
    }
    return &ph->inst;
}
