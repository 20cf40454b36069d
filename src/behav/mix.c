/*
 * mix: parsing and drawing a behavior mix (see mix.h).
 */
#include "behav/mix.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "behav/behav.h"

static int bad(char *err, size_t errlen, const char *fmt, const char *arg)
{
    snprintf(err, errlen, fmt, arg);
    return -EINVAL;
}

int mix_parse(const char *spec, struct mix *m, char *err, size_t errlen)
{
    char buf[1024];
    char *save = NULL, *item;
    double total = 0;

    memset(m, 0, sizeof(*m));
    if (strlen(spec) >= sizeof(buf))
        return bad(err, errlen, "%s", "The behavior spec is too long");
    strcpy(buf, spec);
    for (item = strtok_r(buf, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':'), *end, *name;
        double pct;
        int idx;

        while (*item == ' ')
            item++;
        if (colon == NULL || colon == item)
            return bad(err, errlen,
                       "You need to use percentage:name, not '%s'", item);
        *colon = '\0';
        name = colon + 1;
        errno = 0;
        pct = strtod(item, &end);
        if (*end != '\0' || errno != 0 || !isfinite(pct))
            return bad(err, errlen,
                       "You need to use percentage:name, '%s' is no "
                       "percentage", item);
        if (pct < 0)
            return bad(err, errlen, "'%s' is a negative percentage", item);
        for (end = name + strlen(name); end > name && end[-1] == ' '; end--)
            end[-1] = '\0';
        idx = behav_find(name);
        if (idx < 0) {
            snprintf(err, errlen, "'%s' is an unknown behavior. Pick one of: %s",
                     name, behav_names());
            return -EINVAL;
        }
        if (m->n == MIX_MAX)
            return bad(err, errlen, "%s", "Too many behaviors in the mix");
        m->e[m->n].pct = pct;
        m->e[m->n].behav = idx;
        m->n++;
        total += pct;
    }
    if (m->n == 0)
        return bad(err, errlen, "%s",
                   "You need to use percentage:name (the spec is empty)");
    if (total > 100 + 1e-9)
        return bad(err, errlen, "%s",
                   "The behavior total needs to be 100 or less");
    return 0;
}

int mix_check_proto(const struct mix *m, const char *proto, char *err,
                    size_t errlen)
{
    for (int i = 0; i < m->n; i++)
        if (behav_check_proto(behav_at(m->e[i].behav), proto, err, errlen) < 0)
            return -EINVAL;
    return 0;
}

int mix_draw(const struct mix *m, struct rng *r)
{
    double x, acc = 0;

    /* A mix that is a single certain behavior needs no draw. */
    if (m->n == 1 && m->e[0].pct >= 100)
        return m->e[0].behav;
    if (m->n == 0)
        return behav_find("dummy");
    x = rng_double(r) * 100.0;
    for (int i = 0; i < m->n; i++) {
        acc += m->e[i].pct;
        if (x < acc)
            return m->e[i].behav;
    }
    return behav_find("dummy");
}

char *mix_format(const struct mix *m, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (int i = 0; i < m->n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%g:%s", i ? "," : "",
                                m->e[i].pct, behav_at(m->e[i].behav)->name);
    return buf;
}
