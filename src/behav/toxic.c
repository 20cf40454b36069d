/*
 * toxic: the toxic types and their attributes (see toxic.h).
 */
#include "behav/toxic.h"

#include "behav/schedule.h"
#include "core/script.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>

#define MS 0, 1e9 /* bounds of a duration or a size */

static const struct opt_decl latency_attrs[] = {
    [TOX_LATENCY_MS] = { "latency", OPT_INT, "0", "Delay, ms", MS },
    [TOX_JITTER_MS] = { "jitter", OPT_INT, "0",
                        "Jitter, ms: the spread of the distribution", MS },
    [TOX_LATENCY_DIST] = { "distribution", OPT_DIST, "uniform",
                           "Shape of the jitter: uniform (latency +/- "
                           "jitter), normal (jitter is the standard "
                           "deviation), pareto, paretonormal (netem's), "
                           "lognormal (latency is the median)", 0, 0 },
    [TOX_LATENCY_CORR] = { "correlation", OPT_FLOAT, "0",
                           "Weight of the previous draw in each draw, 0 to 1 "
                           "(netem's)", 0, 1 },
    [TOX_LATENCY_SIGMA] = { "sigma", OPT_FLOAT, "0",
                            "lognormal: standard deviation of ln(delay)",
                            0, 10 },
    { 0 },
};
static const struct opt_decl bandwidth_attrs[] = {
    [TOX_RATE_KBPS] = { "rate", OPT_INT, "0",
                        "KB/s (1000 bytes); 0 holds everything", MS },
    { 0 },
};
static const struct opt_decl delay_attrs[] = {
    [TOX_DELAY_MS] = { "delay", OPT_INT, "0", "Delay of the close, ms", MS },
    { 0 },
};
static const struct opt_decl timeout_attrs[] = {
    [TOX_TIMEOUT_MS] = { "timeout", OPT_INT, "0",
                         "Close after this many ms without data; 0 never",
                         MS },
    { 0 },
};
static const struct opt_decl slicer_attrs[] = {
    [TOX_SLICER_AVG] = { "average_size", OPT_INT, "0", "Bytes per slice", MS },
    [TOX_SLICER_VAR] = { "size_variation", OPT_INT, "0", "Bytes +/-", MS },
    [TOX_SLICER_DELAY_US] = { "delay", OPT_INT, "0",
                              "Delay between slices, microseconds", MS },
    { 0 },
};
static const struct opt_decl limit_attrs[] = {
    [TOX_LIMIT_BYTES] = { "bytes", OPT_INT, "0",
                          "Bytes passed before the connection closes", MS },
    { 0 },
};
static const struct opt_decl packet_loss_attrs[] = {
    [TOX_LOSS_RATE] = { "loss_rate", OPT_FLOAT, "0.1",
                        "Share of chunks dropped overall, 0..1", 0, 1 },
    [TOX_LOSS_CORRELATION] = { "correlation", OPT_FLOAT, "0",
                               "How much a chunk's fate follows the "
                               "previous one's, 0..1 (bursts)", 0, 1 },
    { 0 },
};
static const struct opt_decl corrupt_attrs[] = {
    [TOX_CORRUPT_RATE] = { "rate", OPT_FLOAT, "0.0001",
                           "Probability that each bit is flipped, 0..1",
                           0, 1 },
    { 0 },
};
static const struct opt_decl limit_time_attrs[] = {
    [TOX_LIMIT_TIME_MS] = { "time", OPT_INT, "0",
                            "Close this many ms after the toxic began to "
                            "apply to the connection", MS },
    { 0 },
};
static const struct opt_decl reset_after_attrs[] = {
    [TOX_RESET_AFTER_BYTES] = { "bytes", OPT_INT, "0",
                                "Bytes passed before the connection is "
                                "reset", MS },
    { 0 },
};
static const struct opt_decl total_attrs[] = {
    [TOX_TOTAL_RATE_KBPS] = { "rate", OPT_INT, "0",
                              "KB/s (1000 bytes) for all connections "
                              "together; 0 holds everything", MS },
    { 0 },
};
static const struct opt_decl slow_open_attrs[] = {
    [TOX_SLOW_OPEN_MS] = { "delay", OPT_INT, "0",
                           "Wait before dialing the backend, ms", MS },
    { 0 },
};
static const struct opt_decl no_attrs[] = { { 0 } };

static const struct toxic_type byte_types[] = {
    { "latency", TOXIC_LATENCY, latency_attrs, NULL },
    { "bandwidth", TOXIC_BANDWIDTH, bandwidth_attrs, NULL },
    { "slow_close", TOXIC_SLOW_CLOSE, delay_attrs, NULL },
    { "timeout", TOXIC_TIMEOUT, timeout_attrs, NULL },
    { "reset_peer", TOXIC_RESET_PEER, timeout_attrs, NULL },
    { "slicer", TOXIC_SLICER, slicer_attrs, NULL },
    { "limit_data", TOXIC_LIMIT_DATA, limit_attrs, NULL },
    { "noop", TOXIC_NOOP, no_attrs, NULL },
    { "packet_loss", TOXIC_PACKET_LOSS, packet_loss_attrs, NULL },
    { "corrupt", TOXIC_CORRUPT, corrupt_attrs, NULL },
    { "reset_after", TOXIC_RESET_AFTER, reset_after_attrs, NULL },
    { "limit_time", TOXIC_LIMIT_TIME, limit_time_attrs, NULL },
    { "bandwidth_total", TOXIC_BANDWIDTH_TOTAL, total_attrs, NULL },
    { "slow_open", TOXIC_SLOW_OPEN, slow_open_attrs, NULL },
    { "refuse", TOXIC_REFUSE, no_attrs, NULL },
};

#define NBYTE ((int)(sizeof(byte_types) / sizeof(byte_types[0])))

/* The behaviors, as toxic types, added as behaviors are registered. */
static struct toxic_type behav_types[BEHAV_MAX];
static int nbehav;

static void init_behav_types(void)
{
    for (int i = nbehav; i < behav_count(); i++) {
        behav_types[i].name = behav_at(i)->name;
        behav_types[i].kind = TOXIC_BEHAVIOR;
        behav_types[i].attrs = behav_at(i)->opts;
        behav_types[i].behav = behav_at(i);
        nbehav++;
    }
}

int toxic_type_count(void)
{
    init_behav_types();
    return NBYTE + nbehav;
}

const struct toxic_type *toxic_type_at(int i)
{
    init_behav_types();
    if (i < 0 || i >= NBYTE + nbehav)
        return NULL;
    return i < NBYTE ? &byte_types[i] : &behav_types[i - NBYTE];
}

const struct toxic_type *toxic_type_find(const char *name)
{
    for (int i = 0; i < toxic_type_count(); i++)
        if (strcmp(toxic_type_at(i)->name, name) == 0)
            return toxic_type_at(i);
    return NULL;
}

bool toxic_attr_shown(const struct toxic *t, int i)
{
    if (t->type->kind == TOXIC_LATENCY && i > TOX_JITTER_MS)
        return !opt_is_default(&t->type->attrs[i], &t->inst.vals[i]);
    if (t->type->kind == TOXIC_BEHAVIOR)
        return behav_opt_shown(&t->inst, i);
    return true;
}

struct toxic *toxic_create(const struct toxic_type *type, const char *name,
                           enum toxic_stream stream, const char *stream_text)
{
    static uint32_t next_uid;
    struct toxic *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->stream_text, sizeof(t->stream_text), "%s", stream_text);
    t->type = type;
    t->stream = stream;
    t->toxicity = 1.0;
    t->uid = ++next_uid;
    t->inst.ops = type->behav;
    opt_defaults(type->attrs, t->inst.vals);
    opt_defaults(target_opts, t->inst.target);
    t->inst.ts.set_at = target_now();
    return t;
}

void toxic_destroy(struct toxic *t)
{
    if (t == NULL)
        return;
    opt_free(t->type->attrs, t->inst.vals);
    opt_free(target_opts, t->inst.target);
    target_state_deinit(&t->inst.ts);
    script_unref(t->inst.script);
    schedule_destroy(t->sched);
    free(t);
}

int toxic_stream_parse(const char *text, enum toxic_stream *out)
{
    if (strcasecmp(text, "upstream") == 0) {
        *out = TOXIC_UPSTREAM;
        return 0;
    }
    if (strcasecmp(text, "downstream") == 0) {
        *out = TOXIC_DOWNSTREAM;
        return 0;
    }
    return -1;
}
