/*
 * error: answers in the backend's place. The request is not forwarded; the
 * client gets the protocol's error reply (random bytes for tcp). With
 * inject=true the request is forwarded and garbage is injected into the
 * backend's reply instead. The first `warmup` requests pass untouched.
 */
#include "behav/behav.h"


static const struct opt_decl error_opts[] = {
    BEHAV_ERROR_OPTS,
    { 0 },
};

void behav_error_verdict(const struct behav_inst *b, struct behav_verdict *v)
{
    if (b->vals[BEHAV_ERR_INJECT].b)
        v->rep = BEHAV_CORRUPT;
    else
        v->req = BEHAV_ERROR; /* the backend never sees it: no reply */
    v->err = b->vals;
}

static void error_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                        struct behav_verdict *v)
{
    (void)ctx;
    if (b->calls < (uint64_t)b->vals[BEHAV_ERR_WARMUP].i)
        return;
    behav_error_verdict(b, v);
}

const struct behav_ops behav_error = {
    .name = "error",
    .help = "Reads the request and answers with an error of the protocol "
            "(random bytes for tcp).",
    .opts = error_opts,
    .decide = error_decide,
};
