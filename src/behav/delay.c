/*
 * delay: holds the request (or, with before=false, its reply) for `sleep`
 * seconds, then forwards it. Later data on the same direction waits behind
 * it, so nothing is reordered.
 */
#include "behav/behav.h"

enum { DELAY_SLEEP, DELAY_BEFORE };

static const struct opt_decl delay_opts[] = {
    [DELAY_SLEEP] = { "sleep", OPT_FLOAT, "1", "Delay in seconds", 0, 86400 },
    [DELAY_BEFORE] = { "before", OPT_BOOL, "true",
                       "Hold the request (true) or its reply (false)", 0, 0 },
    { 0 },
};

static void delay_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                        struct behav_verdict *v)
{
    (void)ctx;
    if (b->vals[DELAY_BEFORE].b) {
        v->req = BEHAV_HOLD;
        v->req_delay = b->vals[DELAY_SLEEP].f;
    } else {
        v->rep = BEHAV_HOLD;
        v->rep_delay = b->vals[DELAY_SLEEP].f;
    }
}

const struct behav_ops behav_delay = {
    .name = "delay",
    .help = "Adds a delay before (or after) the backend answers.",
    .opts = delay_opts,
    .decide = delay_decide,
};
