/*
 * json: JSON views of proxies, toxics and options, and their parsing, for
 * the control API and the JSON config file (Toxiproxy's shapes).
 */
#ifndef VAURIEN_CTL_JSON_H
#define VAURIEN_CTL_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "behav/toxic.h"
#include "core/opt.h"
#include "net/proxy.h"
#include "net/server.h"

/* {"name", "listen", "upstream", "enabled", "toxics", "protocol"} */
json_t *ctl_proxy_json(const struct proxy *p);
/* {"attributes", "name", "type", "stream", "toxicity"} */
json_t *ctl_toxic_json(const struct toxic *t);
/* Upstream toxics first, then downstream, each in the order added. */
json_t *ctl_toxics_json(const struct proxy *p);

json_t *ctl_opt_json(const struct opt_decl *d, const union opt_val *v);

/* j as compact JSON text, numbers as Go's encoding/json writes them
 * (Toxiproxy's): a real in the shortest form that reads back the same,
 * "0.3" and "1", never "0.29999999999999999" or "1.0". Returns a malloc'd
 * string, or NULL on ENOMEM. */
char *ctl_json_text(const json_t *j);
/* The same, one member a line, indented by indent spaces a level. */
char *ctl_json_text_indented(const json_t *j, int indent);
/* A double as ctl_json_text() writes it, in buf. */
const char *ctl_json_number(double v, char *buf, size_t len);
/* Sets *v from j as d declares; null means the default. Returns 0, or -1
 * with a message in err. */
int ctl_opt_from_json(const struct opt_decl *d, json_t *j, union opt_val *v,
                      char *err, size_t errlen);

/* Creates a toxic on p from its JSON, checking as Toxiproxy does (stream,
 * name, type, duplicate, attributes). Returns it, or NULL with *status and
 * a message. */
struct toxic *ctl_toxic_create(struct proxy *p, json_t *body, int *status,
                               char *err, size_t errlen);
/* Applies a toxic update: attributes merged, toxicity. */
int ctl_toxic_update(struct toxic *t, json_t *body,
                     const struct proto_ops *proto, char *err, size_t errlen);

/* Sets option key of b (its behavior's or a target option; a "match"
 * may be an object) from j. Returns 0, -ENOENT for no such option, or
 * -EINVAL with a message in err. */
int ctl_inst_set(struct behav_inst *b, const char *key, json_t *j, char *err,
                 size_t errlen);

/* A schedule (behav/schedule.h) from its JSON list of phases, checked
 * against proto. Returns NULL with a message in err. */
struct schedule *ctl_schedule_from_json(json_t *arr,
                                        const struct proto_ops *proto,
                                        char *err, size_t errlen);
/* The schedule as it was given. */
json_t *ctl_schedule_json(const struct schedule *sc);
/* The phase in effect now, from 1; null once every phase has ended. */
json_t *ctl_schedule_phase_json(struct schedule *sc);

/* Adds the target options that are set (target.h) to the object o. */
void ctl_target_json(json_t *o, const union opt_val *target);

/* Creates a proxy (and its toxics) from its JSON. */
struct proxy *ctl_proxy_create(struct server *srv, json_t *body, int *status,
                               char *err, size_t errlen);

/* Checks a populate body (an array of proxies, or an object with
 * "proxies") without changing anything: each entry has a name and an
 * upstream, and its TLS files load. Returns the array (borrowed from
 * body), or NULL with a message. */
json_t *ctl_populate_check(struct server *srv, json_t *body, char *err,
                           size_t errlen);

/* Creates every proxy of a populate array (POST /populate, -config).
 * Returns the array of resulting proxies, or NULL with *status and a
 * message; *done gets what was created before a failure. */
json_t *ctl_populate(struct server *srv, json_t *body, int *status,
                     json_t **done, char *err, size_t errlen);

/* Applies a PUT /behavior body (the original Vaurien's shape) to p: a new
 * mix and options, swapped in as one snapshot. Returns 0, or -1 with the
 * offending field in name and the original's description in err. */
int ctl_behavior_apply(struct proxy *p, json_t *body, char *name,
                       size_t namelen, char *err, size_t errlen);

#endif
