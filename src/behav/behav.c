/*
 * behav: the registry of behaviors and the parts they share.
 */
#include "behav/behav.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/script.h"

static const struct behav_ops *registry[BEHAV_MAX] = {
    &behav_abort,           &behav_bad_cert,
    &behav_bad_length,      &behav_blackout,
    &behav_delay,           &behav_dummy,
    &behav_empty_response,  &behav_error,
    &behav_hang,            &behav_malformed_chunk,
    &behav_no_close_notify, &behav_random_then_close,
    &behav_slow_body,       &behav_tls_alert,
    &behav_tls_handshake_delay, &behav_transient,
};
static int nreg = 16;     /* the built-ins (by name), then custom ones */
static int by_name[BEHAV_MAX] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                  13, 14, 15 };
static char names[BEHAV_MAX * 40]; /* behav_names(), "" when stale */

#define NREG nreg

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

int behav_sorted(int i)
{
    return by_name[i];
}

int behav_register(const struct behav_ops *ops)
{
    int at;

    if (nreg >= BEHAV_MAX)
        return -ENOSPC;
    registry[nreg] = ops;
    for (at = nreg; at > 0 && strcmp(registry[by_name[at - 1]]->name,
                                      ops->name) > 0; at--)
        by_name[at] = by_name[at - 1];
    by_name[at] = nreg;
    names[0] = '\0';
    return nreg++;
}

int behav_find(const char *name)
{
    for (int i = 0; i < NREG; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return i;
    return -1;
}

int behav_dummy_index(void)
{
    static int dummy = -1;

    if (dummy < 0)
        dummy = behav_find("dummy");
    return dummy;
}

int behav_check_proto(const struct behav_ops *ops, const char *proto,
                      char *err, size_t errlen)
{
    if (ops->proto == NULL || strcmp(ops->proto, proto) == 0)
        return 0;
    snprintf(err, errlen, "%s is a behavior of --protocol %s; this proxy "
             "speaks %s", ops->name, ops->proto, proto);
    return -EINVAL;
}

const char *behav_names(void)
{
    if (names[0] == '\0') {
        size_t off = 0;
        for (int i = 0; i < NREG && off < sizeof(names); i++)
            off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s",
                                    i ? ", " : "",
                                    registry[by_name[i]]->name);
    }
    return names;
}

void behav_inst_init(struct behav_inst *b, const struct behav_ops *ops)
{
    memset(b, 0, sizeof(*b));
    b->ops = ops;
    opt_defaults(ops->opts, b->vals);
    opt_defaults(target_opts, b->target);
    b->ts.set_at = target_now();
}

void behav_inst_copy(struct behav_inst *dst, const struct behav_inst *src)
{
    dst->ops = src->ops;
    opt_copy(src->ops->opts, dst->vals, src->vals);
    opt_copy(target_opts, dst->target, src->target);
    target_state_reset(&dst->ts, target_now());
}

bool behav_opt_shown(const struct behav_inst *b, int i)
{
    if (b->ops == NULL || b->ops->base_opts == 0 || i < b->ops->base_opts)
        return true;
    return !opt_is_default(&b->ops->opts[i], &b->vals[i]);
}

void behav_inst_deinit(struct behav_inst *b)
{
    if (b->ops != NULL)
        opt_free(b->ops->opts, b->vals);
    opt_free(target_opts, b->target);
    behav_inst_changed(b);
    target_state_deinit(&b->ts);
}

void behav_inst_changed(struct behav_inst *b)
{
    script_unref(b->script);
    b->script = 0;
    b->opts_json_made = false;
    target_state_reset(&b->ts, target_now());
}

union opt_val *behav_opt_slot(struct behav_inst *b, const char *name,
                              const struct opt_decl **decl)
{
    int o = b->ops != NULL ? opt_find(b->ops->opts, name) : -1;

    if (o >= 0) {
        *decl = &b->ops->opts[o];
        return &b->vals[o];
    }
    o = opt_find(target_opts, name);
    if (o < 0)
        return NULL;
    *decl = &target_opts[o];
    return &b->target[o];
}

void behav_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                  struct behav_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->by = b->ops;
    v->req = BEHAV_PASS;
    v->rep = BEHAV_PASS;
    b->ops->decide(b, ctx, v);
    b->calls++;
}
