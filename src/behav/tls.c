/*
 * TLS faults: behaviors of a connection's handshake and close, for proxies
 * that terminate TLS (--proxy-tls; net/tls.h).
 *   tls_handshake_delay  the handshake starts `delay` ms late
 *   tls_alert            the handshake fails with alert number `alert`
 *   bad_cert             the client is shown a `kind` of bad certificate:
 *                        expired, wrong_name or self_signed
 *   no_close_notify      the connection ends without TLS's close_notify
 * Drawn once per connection, at its handshake, from the mix and the
 * behavior toxics (with their percentages and toxicities); for the
 * requests that follow they are dummy.
 */
#include "behav/behav.h"

enum { TLS_DELAY_MS };
enum { TLS_ALERT };
enum { TLS_BAD_KIND };

static const struct opt_decl delay_opts[] = {
    [TLS_DELAY_MS] = { "delay", OPT_INT, "1000",
                       "Delay before the handshake, ms", 0, 86400000 },
    { 0 },
};
static const struct opt_decl alert_opts[] = {
    [TLS_ALERT] = { "alert", OPT_INT, "40",
                    "TLS alert number (40 handshake_failure, 112 "
                    "unrecognized_name, 70 protocol_version, ...)", 1, 255 },
    { 0 },
};
static const struct opt_decl bad_opts[] = {
    [TLS_BAD_KIND] = { "kind", OPT_STR, "self_signed",
                       "expired, wrong_name or self_signed", 0, 0 },
    { 0 },
};
static const struct opt_decl no_opts[] = { { 0 } };

static void connection_level(struct behav_inst *b, const struct behav_ctx *ctx,
                             struct behav_verdict *v)
{
    (void)b;
    (void)ctx;
    (void)v; /* requests pass: the fault was the handshake's */
}

const struct behav_ops behav_tls_handshake_delay = {
    .name = "tls_handshake_delay",
    .help = "TLS: starts the handshake late (connections of --proxy-tls).",
    .opts = delay_opts,
    .decide = connection_level,
    .tls = BEHAV_TLS_DELAY,
};

const struct behav_ops behav_tls_alert = {
    .name = "tls_alert",
    .help = "TLS: fails the handshake with an alert.",
    .opts = alert_opts,
    .decide = connection_level,
    .tls = BEHAV_TLS_ALERT,
};

const struct behav_ops behav_bad_cert = {
    .name = "bad_cert",
    .help = "TLS: presents an expired, wrong-name or self-signed "
            "certificate.",
    .opts = bad_opts,
    .decide = connection_level,
    .tls = BEHAV_TLS_BAD_CERT,
};

const struct behav_ops behav_no_close_notify = {
    .name = "no_close_notify",
    .help = "TLS: ends the connection without close_notify.",
    .opts = no_opts,
    .decide = connection_level,
    .tls = BEHAV_TLS_NO_CLOSE_NOTIFY,
};
