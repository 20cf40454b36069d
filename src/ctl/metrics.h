/*
 * metrics: the Prometheus text format of GET /metrics — its helpers, and
 * the series of what the data path reports (net/report.h): requests per
 * protocol, faults per behavior and toxic, round-trip histograms, the
 * journal's counts.
 */
#ifndef VAURIEN_METRICS_H
#define VAURIEN_METRICS_H

#include <event2/buffer.h>

struct server;

/* A label value with \\, \" and \n escaped: no name ends its label or
 * its line. */
void metrics_label(struct evbuffer *out, const char *v);
/* # HELP and # TYPE of a family. */
void metrics_family(struct evbuffer *out, const char *name, const char *type,
                    const char *help);
/* The series of report.h for every proxy of srv. */
void metrics_report(struct evbuffer *out, const struct server *srv);

#endif
