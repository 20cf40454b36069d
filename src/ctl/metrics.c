/*
 * metrics: Prometheus text for GET /metrics (see metrics.h).
 */
#include "ctl/metrics.h"

#include <inttypes.h>
#include <stdio.h>

#include "behav/behav.h"
#include "behav/toxic.h"
#include "core/journal.h"
#include "net/proxy.h"
#include "net/server.h"

void metrics_label(struct evbuffer *out, const char *v)
{
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '\\')
            evbuffer_add(out, "\\\\", 2);
        else if (*p == '"')
            evbuffer_add(out, "\\\"", 2);
        else if (*p == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, p, 1);
    }
}

void metrics_family(struct evbuffer *out, const char *name, const char *type,
                    const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

/* name{proxy="P",protocol="X"... : the labels every proxy series starts with. */
static void start(struct evbuffer *out, const char *name, const struct proxy *p)
{
    evbuffer_add_printf(out, "%s{proxy=\"", name);
    metrics_label(out, p->name);
    evbuffer_add_printf(out, "\",protocol=\"");
    metrics_label(out, p->conf->proto->name);
    evbuffer_add(out, "\"", 1);
}

static void histogram(struct evbuffer *out, const struct proxy *p)
{
    static const double bounds[] = PROXY_RTT_BOUNDS;
    const struct proxy_stats *st = &p->stats;
    uint64_t cum = 0;

    for (int i = 0; i <= PROXY_RTT_N; i++) {
        cum += st->rtt[i];
        start(out, "vaurien_request_duration_seconds_bucket", p);
        if (i < PROXY_RTT_N)
            evbuffer_add_printf(out, ",le=\"%g\"} %" PRIu64 "\n", bounds[i], cum);
        else
            evbuffer_add_printf(out, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    start(out, "vaurien_request_duration_seconds_sum", p);
    evbuffer_add_printf(out, "} %.9f\n", st->rtt_sum);
    start(out, "vaurien_request_duration_seconds_count", p);
    evbuffer_add_printf(out, "} %" PRIu64 "\n", st->rtt_count);
}

void metrics_report(struct evbuffer *out, const struct server *srv)
{
    const struct proxy *p;

    metrics_family(out, "vaurien_requests_total", "counter",
                   "Requests (chunks on tcp) a decision was drawn for.");
    TAILQ_FOREACH(p, &srv->proxies, link) {
        start(out, "vaurien_requests_total", p);
        evbuffer_add_printf(out, "} %" PRIu64 "\n", p->stats.requests);
    }
    metrics_family(out, "vaurien_faults_total", "counter",
                   "Requests a behavior acted on, from the mix or a behavior "
                   "toxic.");
    TAILQ_FOREACH(p, &srv->proxies, link)
        for (int i = 0; i < behav_count(); i++)
            if (p->stats.faults[i] > 0) {
                start(out, "vaurien_faults_total", p);
                evbuffer_add_printf(out, ",behavior=\"%s\"} %" PRIu64 "\n",
                                    behav_at(i)->name, p->stats.faults[i]);
            }
    metrics_family(out, "vaurien_toxic_acted_total", "counter",
                   "Times a toxic acted: on a chunk of bytes, or a request.");
    TAILQ_FOREACH(p, &srv->proxies, link)
        for (int i = 0; i < p->ntoxics; i++) {
            const struct toxic *t = p->toxics[i];
            start(out, "vaurien_toxic_acted_total", p);
            evbuffer_add(out, ",toxic=\"", 8);
            metrics_label(out, t->name);
            evbuffer_add_printf(out, "\",type=\"%s\"} %" PRIu64 "\n",
                                t->type->name, t->acted);
        }
    metrics_family(out, "vaurien_request_duration_seconds", "histogram",
                   "Request round trips through the proxy, from the "
                   "request's first byte read to its reply's last byte.");
    TAILQ_FOREACH(p, &srv->proxies, link)
        histogram(out, p);
    metrics_family(out, "vaurien_journal_events_total", "counter",
                   "Events written to the fault journal.");
    evbuffer_add_printf(out, "vaurien_journal_events_total %" PRIu64 "\n",
                        journal_written());
    metrics_family(out, "vaurien_journal_dropped_total", "counter",
                   "Journal events overwritten before they could be read.");
    evbuffer_add_printf(out, "vaurien_journal_dropped_total %" PRIu64 "\n",
                        journal_dropped());
}
