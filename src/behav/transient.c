/*
 * transient: behaves as error for `agitate` requests (after `warmup` that
 * pass), then passes everything: a backend that fails and recovers.
 */
#include "behav/behav.h"

enum { TRANSIENT_AGITATE = BEHAV_ERR_NOPTS };

static const struct opt_decl transient_opts[] = {
    BEHAV_ERROR_OPTS,
    [TRANSIENT_AGITATE] = { "agitate", OPT_INT, "1",
                            "Number of requests that get an error before the "
                            "backend recovers", 0, 1e12 },
    { 0 },
};

static void transient_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                        struct behav_verdict *v)
{
    (void)ctx;
    uint64_t warmup = (uint64_t)b->vals[BEHAV_ERR_WARMUP].i;
    uint64_t agitate = (uint64_t)b->vals[TRANSIENT_AGITATE].i;

    if (b->calls >= warmup && b->calls - warmup < agitate)
        behav_error_verdict(b, v);
}

const struct behav_ops behav_transient = {
    .name = "transient",
    .help = "Errors for the first `agitate` requests, then passes: a "
            "transient failure.",
    .opts = transient_opts,
    .decide = transient_decide,
};
