/*
 * blackout, hang, abort: behaviors without options that end the exchange.
 *   blackout  closes the client at once; nothing is forwarded.
 *   hang      swallows the request and everything after it; the client is
 *             kept open with no answer until it leaves or times out.
 *   abort     forwards the request, then cuts the backend before the reply
 *             and closes the client.
 */
#include "behav/behav.h"

static const struct opt_decl no_opts[] = { { 0 } };

static void blackout_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                        struct behav_verdict *v)
{
    (void)b;
    (void)ctx;
    v->req = BEHAV_CLOSE;
    v->rep = BEHAV_DROP;
}

static void hang_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                        struct behav_verdict *v)
{
    (void)b;
    (void)ctx;
    v->req = BEHAV_HANG;
    v->rep = BEHAV_DROP;
}

static void abort_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                        struct behav_verdict *v)
{
    (void)b;
    (void)ctx;
    v->req = BEHAV_ABORT;
    v->rep = BEHAV_DROP;
}

const struct behav_ops behav_blackout = {
    .name = "blackout",
    .help = "Closes the client connection at once; nothing is forwarded.",
    .opts = no_opts,
    .decide = blackout_decide,
};

const struct behav_ops behav_hang = {
    .name = "hang",
    .help = "Reads what the client sends and never answers; the connection "
            "stays open.",
    .opts = no_opts,
    .decide = hang_decide,
};

const struct behav_ops behav_abort = {
    .name = "abort",
    .help = "Forwards the request, then cuts the backend connection before "
            "the reply and closes the client.",
    .opts = no_opts,
    .decide = abort_decide,
};
