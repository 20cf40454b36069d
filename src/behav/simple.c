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

static const struct opt_decl abort_opts[] = {
    [BEHAV_ABORT_CODE] = { "code", OPT_INT, "2",
      "http2, grpc: the RST_STREAM error code the client gets (2 "
      "INTERNAL_ERROR, 7 REFUSED_STREAM, 8 CANCEL, ...)", 0, 4294967295.0 },
    { 0 },
};

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
    (void)ctx;
    v->req = BEHAV_ABORT;
    v->rep = BEHAV_DROP;
    v->err = b->vals;
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
            "the reply and closes the client (http2: resets the stream).",
    .opts = abort_opts,
    .base_opts = BEHAV_OPTS_NONE_SHOWN, /* the original's had none */
    .decide = abort_decide,
};
