/*
 * behav: the registry of behaviors and the parts they share.
 */
#include "behav/behav.h"

#include <stdio.h>
#include <string.h>

static const struct behav_ops *const registry[] = {
    &behav_abort, &behav_blackout, &behav_delay,     &behav_dummy,
    &behav_error, &behav_hang,     &behav_transient,
};

#define NREG ((int)(sizeof(registry) / sizeof(registry[0])))

#define BEHAV_NAME(e, s) s,
static const char *const act_names[] = { BEHAV_ACTS(BEHAV_NAME) };
#undef BEHAV_NAME

const char *behav_act_name(enum behav_act a)
{
    return act_names[a];
}

int behav_count(void)
{
    return NREG;
}

const struct behav_ops *behav_at(int i)
{
    return i >= 0 && i < NREG ? registry[i] : NULL;
}

int behav_find(const char *name)
{
    for (int i = 0; i < NREG; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return i;
    return -1;
}

const char *behav_names(void)
{
    static char buf[512];

    if (buf[0] == '\0') {
        size_t off = 0;
        for (int i = 0; i < NREG; i++)
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
                                    i ? ", " : "", registry[i]->name);
    }
    return buf;
}

void behav_inst_init(struct behav_inst *b, const struct behav_ops *ops)
{
    memset(b, 0, sizeof(*b));
    b->ops = ops;
    opt_defaults(ops->opts, b->vals);
}

void behav_inst_deinit(struct behav_inst *b)
{
    if (b->ops != NULL)
        opt_free(b->ops->opts, b->vals);
}

void behav_decide(struct behav_inst *b, struct behav_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->by = b->ops;
    v->req = BEHAV_PASS;
    v->rep = BEHAV_PASS;
    b->ops->decide(b, v);
    b->calls++;
}
