/*
 * opt: declared options and their values (see opt.h).
 */
#include "core/opt.h"

#include "core/dist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OPT_NAME(e, s) s,
static const char *const type_names[] = { OPT_TYPES(OPT_NAME) };
#undef OPT_NAME

const char *opt_type_name(enum opt_type t)
{
    return type_names[t];
}

int opt_parse_bool(const char *text)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return 1;
        if (strcasecmp(text, no[i]) == 0)
            return 0;
    }
    return -1;
}

static bool out_of_bounds(const struct opt_decl *d, double v)
{
    return d->min != d->max && (v < d->min || v > d->max);
}

static int bounds_error(const struct opt_decl *d, const char *text, char *err,
                        size_t errlen)
{
    snprintf(err, errlen, "option '%s': %s is out of range (%g to %g)",
             d->name, text, d->min, d->max);
    return -EINVAL;
}

/* Stores a copy of text in out->s, freeing what was there. */
static int set_str(const char *text, union opt_val *out, char *err,
                   size_t errlen)
{
    char *s = strdup(text);

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    free(out->s);
    out->s = s;
    return 0;
}

int opt_parse(const struct opt_decl *d, const char *text, union opt_val *out,
              char *err, size_t errlen)
{
    char *end;

    switch (d->type) {
    case OPT_BOOL: {
        int b = opt_parse_bool(text);
        if (b < 0) {
            snprintf(err, errlen,
                     "option '%s' takes true or false, not '%s'", d->name, text);
            return -EINVAL;
        }
        out->b = b;
        return 0;
    }
    case OPT_INT: {
        long long v;
        errno = 0;
        v = strtoll(text, &end, 10);
        if (text[0] == '\0' || *end != '\0' || errno != 0) {
            snprintf(err, errlen, "option '%s' takes an integer, not '%s'",
                     d->name, text);
            return -EINVAL;
        }
        if (out_of_bounds(d, (double)v))
            return bounds_error(d, text, err, errlen);
        out->i = v;
        return 0;
    }
    case OPT_FLOAT: {
        double v;
        errno = 0;
        v = strtod(text, &end);
        if (text[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v)) {
            snprintf(err, errlen, "option '%s' takes a number, not '%s'",
                     d->name, text);
            return -EINVAL;
        }
        if (out_of_bounds(d, v))
            return bounds_error(d, text, err, errlen);
        out->f = v;
        return 0;
    }
    case OPT_DIST:
        if (dist_find(text) < 0) {
            snprintf(err, errlen, "option '%s' takes %s, not '%s'", d->name,
                     dist_names(), text);
            return -EINVAL;
        }
        return set_str(text, out, err, errlen);
    case OPT_STR:
        return set_str(text, out, err, errlen);
    }
    return -EINVAL;
}

void opt_defaults(const struct opt_decl *decls, union opt_val *vals)
{
    char err[128];

    for (int i = 0; decls[i].name != NULL; i++) {
        memset(&vals[i], 0, sizeof(vals[i]));
        /* Defaults are part of the code and checked by the unit tests. */
        (void)opt_parse(&decls[i], decls[i].def, &vals[i], err, sizeof(err));
    }
}

void opt_copy(const struct opt_decl *decls, union opt_val *dst,
              const union opt_val *src)
{
    for (int i = 0; decls[i].name != NULL; i++) {
        dst[i] = src[i];
        if (opt_is_str(&decls[i]) && src[i].s != NULL)
            dst[i].s = strdup(src[i].s);
    }
}

bool opt_is_str(const struct opt_decl *d)
{
    return d->type == OPT_STR || d->type == OPT_DIST;
}

bool opt_is_default(const struct opt_decl *d, const union opt_val *v)
{
    union opt_val def = { 0 };
    char err[128];
    bool same;

    if (opt_parse(d, d->def, &def, err, sizeof(err)) < 0)
        return false;
    switch (d->type) {
    case OPT_BOOL:
        return v->b == def.b;
    case OPT_INT:
        return v->i == def.i;
    case OPT_FLOAT:
        return v->f == def.f;
    case OPT_STR:
    case OPT_DIST:
        break;
    }
    same = strcmp(v->s != NULL ? v->s : "", def.s) == 0;
    free(def.s);
    return same;
}

void opt_free(const struct opt_decl *decls, union opt_val *vals)
{
    for (int i = 0; decls[i].name != NULL; i++) {
        if (opt_is_str(&decls[i])) {
            free(vals[i].s);
            vals[i].s = NULL;
        }
    }
}

static bool same_name(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++) {
        char x = *a == '-' ? '_' : *a;
        char y = *b == '-' ? '_' : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

int opt_find(const struct opt_decl *decls, const char *name)
{
    for (int i = 0; decls[i].name != NULL; i++)
        if (same_name(decls[i].name, name))
            return i;
    return -1;
}
