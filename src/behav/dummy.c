/*
 * dummy: passes requests and replies through untouched.
 */
#include "behav/behav.h"

static const struct opt_decl dummy_opts[] = { { 0 } };

static void dummy_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                        struct behav_verdict *v)
{
    (void)b;
    (void)ctx;
    (void)v;
}

const struct behav_ops behav_dummy = {
    .name = "dummy",
    .help = "Pass everything through.",
    .opts = dummy_opts,
    .decide = dummy_decide,
};
