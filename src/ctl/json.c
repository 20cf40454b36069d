/*
 * json: proxies and toxics as JSON (see json.h).
 */
#include "ctl/json.h"

#include "behav/mix.h"
#include "behav/schedule.h"
#include "core/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

const char *ctl_json_number(double v, char *buf, size_t len)
{
    char e[40];
    double a = fabs(v);
    int digits;

    if (!isfinite(v)) {
        snprintf(buf, len, "null"); /* JSON has no infinities */
        return buf;
    }
    if (v == 0) {
        snprintf(buf, len, "0");
        return buf;
    }
    /* the fewest significant digits that read back as v */
    for (digits = 1; digits < 17; digits++) {
        snprintf(e, sizeof(e), "%.*e", digits - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    snprintf(e, sizeof(e), "%.*e", digits - 1, v);
    if (a >= 1e-6 && a < 1e21) {
        /* fixed notation, as Go does in this range */
        int exp10 = atoi(strchr(e, 'e') + 1);
        int decimals = digits - 1 - exp10;
        snprintf(buf, len, "%.*f", decimals > 0 ? decimals : 0, v);
    } else {
        snprintf(buf, len, "%s", e); /* "1e+21", "1.5e-07" */
    }
    return buf;
}

/* A new line and the indentation of depth, when indenting. */
static void json_text_break(struct evbuffer *out, int indent, int depth)
{
    if (indent > 0)
        evbuffer_add_printf(out, "\n%*s", indent * depth, "");
}

static int json_text_add(struct evbuffer *out, const json_t *j, int indent,
                         int depth)
{
    char num[64];
    const char *key;
    json_t *v;
    size_t i;
    int first = 1;

    switch (json_typeof(j)) {
    case JSON_OBJECT:
        evbuffer_add(out, "{", 1);
        json_object_foreach((json_t *)j, key, v) {
            json_t *k = json_string(key);
            int rc = k != NULL ? 0 : -1;
            if (!first)
                evbuffer_add(out, ",", 1);
            first = 0;
            json_text_break(out, indent, depth + 1);
            if (rc == 0)
                rc = json_text_add(out, k, indent, depth + 1);
            json_decref(k);
            if (rc < 0)
                return -1;
            evbuffer_add(out, indent > 0 ? ": " : ":", indent > 0 ? 2 : 1);
            if (json_text_add(out, v, indent, depth + 1) < 0)
                return -1;
        }
        if (!first)
            json_text_break(out, indent, depth);
        return evbuffer_add(out, "}", 1);
    case JSON_ARRAY:
        evbuffer_add(out, "[", 1);
        json_array_foreach(j, i, v) {
            if (i > 0)
                evbuffer_add(out, ",", 1);
            json_text_break(out, indent, depth + 1);
            if (json_text_add(out, v, indent, depth + 1) < 0)
                return -1;
        }
        if (json_array_size(j) > 0)
            json_text_break(out, indent, depth);
        return evbuffer_add(out, "]", 1);
    case JSON_REAL:
        ctl_json_number(json_real_value(j), num, sizeof(num));
        return evbuffer_add(out, num, strlen(num));
    default: {
        /* strings (escaped by jansson), integers, true, false, null */
        char *text = json_dumps(j, JSON_ENCODE_ANY);
        int rc = text != NULL ? evbuffer_add(out, text, strlen(text)) : -1;
        free(text);
        return rc;
    }
    }
}

char *ctl_json_text_indented(const json_t *j, int indent)
{
    struct evbuffer *out = evbuffer_new();
    char *text = NULL;

    if (out != NULL && json_text_add(out, j, indent, 0) == 0) {
        size_t n = evbuffer_get_length(out);
        text = malloc(n + 1);
        if (text != NULL) {
            evbuffer_remove(out, text, n);
            text[n] = '\0';
        }
    }
    if (out != NULL)
        evbuffer_free(out);
    return text;
}

char *ctl_json_text(const json_t *j)
{
    return ctl_json_text_indented(j, 0);
}

json_t *ctl_opt_json(const struct opt_decl *d, const union opt_val *v)
{
    switch (d->type) {
    case OPT_BOOL:
        return json_boolean(v->b);
    case OPT_INT:
        return json_integer(v->i);
    case OPT_FLOAT:
        return json_real(v->f);
    case OPT_STR:
    case OPT_DIST:
        return json_string(v->s != NULL ? v->s : "");
    }
    return json_null();
}

int ctl_opt_from_json(const struct opt_decl *d, json_t *j, union opt_val *v,
                      char *err, size_t errlen)
{
    char text[64], why[256];
    const char *t = text;

    if (j == NULL || json_is_null(j))
        t = d->def;
    else if (d->type == OPT_INT) {
        if (!json_is_integer(j)) {
            snprintf(err, errlen, "bad request body: attribute '%s' must be "
                     "an integer", d->name);
            return -1;
        }
        snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(j));
    } else if (d->type == OPT_FLOAT) {
        if (!json_is_number(j)) {
            snprintf(err, errlen, "bad request body: attribute '%s' must be "
                     "a number", d->name);
            return -1;
        }
        snprintf(text, sizeof(text), "%.17g", json_number_value(j));
    } else if (d->type == OPT_BOOL) {
        if (json_is_boolean(j))
            t = json_is_true(j) ? "true" : "false";
        else if (json_is_string(j))
            t = json_string_value(j);
        else {
            snprintf(err, errlen, "bad request body: attribute '%s' must be "
                     "true or false", d->name);
            return -1;
        }
    } else {
        if (json_is_string(j))
            t = json_string_value(j);
        else if (json_is_number(j))
            snprintf(text, sizeof(text), "%.17g", json_number_value(j));
        else {
            snprintf(err, errlen, "bad request body: attribute '%s' must be "
                     "a string", d->name);
            return -1;
        }
    }
    if (opt_parse(d, t, v, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "bad request body: %s", why);
        return -1;
    }
    return 0;
}

/* A matcher given as an object ({"command": "SET", "header": {"X-Test":
 * "1"}}) or as its text, as the target option's text ("command=SET,
 * header.X-Test=1"). Returns 0, or -1 with err. */
static int match_text(json_t *j, char *out, size_t cap, char *err,
                      size_t errlen)
{
    size_t at = 0;
    const char *key;
    json_t *v;

    if (json_is_string(j)) {
        snprintf(out, cap, "%s", json_string_value(j));
        return 0;
    }
    if (!json_is_object(j)) {
        snprintf(err, errlen, "bad request body: match must be an object");
        return -1;
    }
    out[0] = '\0';
    json_object_foreach(j, key, v) {
        json_t *hv;
        const char *hname;
        int n = 0;
        if (key[0] == '\0' || strpbrk(key, ",=.: ") != NULL) {
            snprintf(err, errlen, "bad request body: match key '%s' is not a "
                     "key", key);
            return -1;
        }
        if (strcmp(key, "header") == 0 && json_is_object(v)) {
            json_object_foreach(v, hname, hv) {
                if (hname[0] == '\0' || strpbrk(hname, ",=: ") != NULL) {
                    snprintf(err, errlen, "bad request body: match header "
                             "name '%s' is not a header name", hname);
                    return -1;
                }
                if (!json_is_string(hv) || strchr(json_string_value(hv), ',')) {
                    snprintf(err, errlen, "bad request body: match header "
                             "'%s' must be a string without ','", hname);
                    return -1;
                }
                n = snprintf(out + at, cap - at, "%sheader.%s=%s",
                             at ? "," : "", hname, json_string_value(hv));
                if (n < 0 || (size_t)n >= cap - at)
                    break;
                at += (size_t)n;
            }
        } else if (json_is_string(v) && !strchr(json_string_value(v), ',')) {
            n = snprintf(out + at, cap - at, "%s%s=%s", at ? "," : "", key,
                         json_string_value(v));
        } else {
            snprintf(err, errlen, "bad request body: match '%s' must be a "
                     "string without ','", key);
            return -1;
        }
        if (n < 0 || (size_t)n >= cap - at) {
            snprintf(err, errlen, "bad request body: match is longer than "
                     "%zu bytes", cap - 1);
            return -1;
        }
        at += (size_t)n;
    }
    return 0;
}

int ctl_inst_set(struct behav_inst *b, const char *key, json_t *j, char *err,
                 size_t errlen)
{
    const struct opt_decl *d;
    union opt_val *slot = behav_opt_slot(b, key, &d);

    if (slot == NULL)
        return -ENOENT;
    if (d == &target_opts[TARGET_MATCH] && j != NULL && !json_is_null(j)) {
        char text[TARGET_MATCH_MAX], why[300];
        if (match_text(j, text, sizeof(text), err, errlen) < 0)
            return -EINVAL;
        if (opt_parse(d, text, slot, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "bad request body: %s", why);
            return -EINVAL;
        }
        return 0;
    }
    return ctl_opt_from_json(d, j, slot, err, errlen) < 0 ? -EINVAL : 0;
}

static void add_match_pair(void *ctx, const char *key, const char *value)
{
    json_t *o = ctx;

    if (strncmp(key, "header.", 7) == 0) {
        json_t *h = json_object_get(o, "header");
        if (h == NULL) {
            h = json_object();
            json_object_set_new(o, "header", h);
        }
        json_object_set_new(h, key + 7, json_string(value));
        return;
    }
    json_object_set_new(o, key, json_string(value));
}

void ctl_target_json(json_t *o, const union opt_val *target)
{
    union opt_val def[TARGET_NOPTS];

    opt_defaults(target_opts, def);
    for (int i = 0; target_opts[i].name != NULL; i++) {
        const struct opt_decl *d = &target_opts[i];
        if (d->type == OPT_STR) {
            if (target[i].s == NULL || target[i].s[0] == '\0')
                continue;
        } else if (memcmp(&target[i], &def[i], sizeof(def[i])) == 0) {
            continue;
        }
        if (i == TARGET_MATCH) {
            json_t *m = json_object();
            target_match_each(target[i].s, add_match_pair, m);
            json_object_set_new(o, d->name, m);
        } else {
            json_object_set_new(o, d->name, ctl_opt_json(d, &target[i]));
        }
    }
    opt_free(target_opts, def);
}

struct schedule *ctl_schedule_from_json(json_t *arr,
                                        const struct proto_ops *proto,
                                        char *err, size_t errlen)
{
    struct schedule *sc;
    char why[300];
    json_t *ph;
    size_t i;

    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > SCHEDULE_MAX) {
        snprintf(err, errlen, "bad request body: schedule must be a list of "
                 "1 to %d phases", SCHEDULE_MAX);
        return NULL;
    }
    sc = schedule_create(target_now());
    if (sc == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    json_array_foreach(arr, i, ph) {
        struct schedule_phase *p = &sc->ph[sc->n];
        const char *name = json_string_value(json_object_get(ph, "behavior"));
        json_t *jfor = json_object_get(ph, "for"), *v;
        const char *key;
        int b;

        if (!json_is_object(ph) || name == NULL) {
            snprintf(err, errlen, "bad request body: schedule phase %zu needs "
                     "a \"behavior\"", i + 1);
            goto bad;
        }
        b = behav_find(name);
        if (b < 0) {
            snprintf(err, errlen, "bad request body: schedule phase %zu: the "
                     "'%s' behavior does not exist", i + 1, name);
            goto bad;
        }
        if (behav_check_proto(behav_at(b), proto->name, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "bad request body: schedule phase %zu: %s",
                     i + 1, why);
            goto bad;
        }
        behav_inst_init(&p->inst, behav_at(b));
        sc->n++;
        p->kind = SCHEDULE_EVER;
        if (jfor != NULL && (!json_is_string(jfor) ||
                             schedule_parse_for(json_string_value(jfor),
                                                &p->kind, &p->amount, why,
                                                sizeof(why)) < 0)) {
            snprintf(err, errlen, "bad request body: schedule phase %zu: %s",
                     i + 1, json_is_string(jfor) ? why : "\"for\" is a string");
            goto bad;
        }
        if (jfor == NULL && i + 1 < json_array_size(arr)) {
            snprintf(err, errlen, "bad request body: schedule phase %zu has "
                     "no \"for\": only the last phase lasts for ever", i + 1);
            goto bad;
        }
        json_object_foreach(ph, key, v) {
            int rc;
            if (strcmp(key, "behavior") == 0 || strcmp(key, "for") == 0)
                continue;
            if (strcmp(key, "ttl") == 0) {
                snprintf(err, errlen, "bad request body: schedule phase %zu: "
                         "a phase lasts its \"for\"; ttl does not apply",
                         i + 1);
                goto bad;
            }
            rc = ctl_inst_set(&p->inst, key, v, why, sizeof(why));
            if (rc == -ENOENT)
                snprintf(why, sizeof(why), "the '%s' behavior has no option "
                         "'%s'", name, key);
            if (rc < 0) {
                snprintf(err, errlen, "bad request body: schedule phase %zu: "
                         "%s", i + 1, why);
                goto bad;
            }
        }
        if (target_check(p->inst.target, proto, false, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "bad request body: schedule phase %zu: %s",
                     i + 1, why);
            goto bad;
        }
    }
    sc->given = json_dumps(arr, JSON_COMPACT);
    if (sc->given == NULL) {
        snprintf(err, errlen, "out of memory");
        goto bad;
    }
    return sc;
bad:
    schedule_destroy(sc);
    return NULL;
}

json_t *ctl_schedule_json(const struct schedule *sc)
{
    return json_loads(sc->given, 0, NULL);
}

json_t *ctl_schedule_phase_json(struct schedule *sc)
{
    int cur = schedule_phase(sc, target_now());

    return cur < sc->n ? json_integer(cur + 1) : json_null();
}

json_t *ctl_toxic_json(const struct toxic *t)
{
    json_t *o = json_object(), *a = json_object();
    const struct opt_decl *d = t->type->attrs;

    for (int i = 0; d[i].name != NULL; i++)
        if (toxic_attr_shown(t, i))
            json_object_set_new(a, d[i].name,
                                ctl_opt_json(&d[i], &t->inst.vals[i]));
    ctl_target_json(a, t->inst.target);
    if (t->sched != NULL) {
        json_object_set_new(a, "schedule", ctl_schedule_json(t->sched));
        json_object_set_new(a, "phase", ctl_schedule_phase_json(t->sched));
    }
    json_object_set_new(o, "attributes", a);
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "type", json_string(t->type->name));
    json_object_set_new(o, "stream", json_string(t->stream_text));
    json_object_set_new(o, "toxicity", json_real(t->toxicity));
    return o;
}

json_t *ctl_toxics_json(const struct proxy *p)
{
    json_t *a = json_array();

    for (int s = TOXIC_UPSTREAM; s <= TOXIC_DOWNSTREAM; s++)
        for (int i = 0; i < p->ntoxics; i++)
            if ((int)p->toxics[i]->stream == s)
                json_array_append_new(a, ctl_toxic_json(p->toxics[i]));
    return a;
}

json_t *ctl_proxy_json(const struct proxy *p)
{
    json_t *o = json_object();
    char listen[300];

    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "listen",
                        json_string(proxy_listen_text(p, listen, sizeof(listen))));
    json_object_set_new(o, "upstream", json_string(p->upstream_text));
    json_object_set_new(o, "enabled", json_boolean(p->enabled));
    json_object_set_new(o, "toxics", ctl_toxics_json(p));
    json_object_set_new(o, "protocol", json_string(p->conf->proto->name));
    /* Vaurien's TLS, shown only where set: Toxiproxy's view is unchanged.
     * What the proxy's JSON gave comes back as given (a round trip through
     * POST /populate keeps the proxy); else what server-wide flags set. */
    if (p->tls_given != NULL) {
        json_t *given = json_loads(p->tls_given, 0, NULL);
        json_object_update(o, given);
        json_decref(given);
        if (p->tls.server != NULL && p->tls.client != NULL &&
            !p->tls.implicit_server && !p->tls.implicit_client)
            json_object_set_new(o, "starttls", json_true());
        return o;
    }
    if (p->tls.implicit_server)
        json_object_set_new(o, "proxy_tls", json_true());
    if (p->tls.implicit_client)
        json_object_set_new(o, "backend_tls",
                            json_pack("{s:b}", "insecure",
                                      p->tls.verify_host[0] == '\0'));
    if (p->tls.server != NULL && p->tls.client != NULL &&
        !p->tls.implicit_server && !p->tls.implicit_client)
        json_object_set_new(o, "starttls", json_true());
    return o;
}

/* Sets a toxic's attributes from attrs (its type's and the target
 * options; other keys are ignored, as Toxiproxy does), all or nothing;
 * a matcher is checked against proto. */
static int set_attributes(struct toxic *t, json_t *attrs,
                          const struct proto_ops *proto, char *err,
                          size_t errlen)
{
    const struct opt_decl *d = t->type->attrs;
    struct behav_inst b = { .ops = t->type->behav };
    struct schedule *sched = NULL;
    bool drop_sched = false;
    const char *key;
    char why[300];
    json_t *j;

    if (attrs == NULL || json_is_null(attrs))
        return 0;
    if (!json_is_object(attrs)) {
        snprintf(err, errlen, "bad request body: attributes must be an object");
        return -1;
    }
    /* all or nothing: parse into a copy first */
    opt_copy(d, b.vals, t->inst.vals);
    opt_copy(target_opts, b.target, t->inst.target);
    if (json_is_null(json_object_get(attrs, "schedule"))) {
        drop_sched = true; /* null: the toxic's own behavior decides */
    } else if (json_object_get(attrs, "schedule") != NULL) {
        if (t->type->kind != TOXIC_BEHAVIOR) {
            snprintf(err, errlen, "bad request body: a schedule is for a "
                     "behavior toxic, not %s", t->type->name);
            goto bad;
        }
        sched = ctl_schedule_from_json(json_object_get(attrs, "schedule"),
                                       proto, err, errlen);
        if (sched == NULL)
            goto bad;
    }
    json_object_foreach(attrs, key, j) {
        const struct opt_decl *od;
        if (opt_find(d, key) >= 0) { /* the type's own (byte toxics have
                                        no ops for behav_opt_slot) */
            int i = opt_find(d, key);
            if (ctl_opt_from_json(&d[i], j, &b.vals[i], err, errlen) < 0)
                goto bad;
        } else if (behav_opt_slot(&b, key, &od) != NULL &&
                   ctl_inst_set(&b, key, j, err, errlen) < 0) {
            goto bad;
        }
    }
    if (target_check(b.target, proto, t->type->kind != TOXIC_BEHAVIOR, why,
                     sizeof(why)) < 0) {
        snprintf(err, errlen, "bad request body: %s", why);
        goto bad;
    }
    opt_free(d, t->inst.vals);
    opt_free(target_opts, t->inst.target);
    memcpy(t->inst.vals, b.vals, sizeof(b.vals));
    memcpy(t->inst.target, b.target, sizeof(b.target));
    behav_inst_changed(&t->inst);
    if (sched != NULL || drop_sched) {
        schedule_destroy(t->sched);
        t->sched = sched;
    }
    return 0;
bad:
    schedule_destroy(sched);
    opt_free(d, b.vals);
    opt_free(target_opts, b.target);
    return -1;
}

static int set_toxicity(struct toxic *t, json_t *j, char *err, size_t errlen)
{
    double x;

    if (j == NULL || json_is_null(j))
        return 0;
    if (!json_is_number(j)) {
        snprintf(err, errlen, "bad request body: toxicity must be a number");
        return -1;
    }
    x = json_number_value(j);
    if (!(x >= 0 && x <= 1)) {
        snprintf(err, errlen, "bad request body: toxicity must be between 0 "
                 "and 1");
        return -1;
    }
    t->toxicity = x;
    return 0;
}

/* A name as given: refused (400) when it holds a NUL byte or is longer
 * than a name is kept, never cut. Returns 0, or -1 with a message. */
static int name_check(json_t *o, const char *what, char *err, size_t errlen)
{
    json_t *j = json_object_get(o, "name");
    size_t n;

    if (j == NULL || !json_is_string(j))
        return 0;
    n = json_string_length(j);
    if (strlen(json_string_value(j)) != n) {
        snprintf(err, errlen, "bad request body: a %s name may not hold a "
                 "NUL byte", what);
        return -1;
    }
    if (n >= TOXIC_NAME_MAX) {
        snprintf(err, errlen, "bad request body: a %s name is at most %d "
                 "bytes (this one has %zu)", what, TOXIC_NAME_MAX - 1, n);
        return -1;
    }
    return 0;
}

static const char *str_field(json_t *o, const char *key, bool *bad)
{
    json_t *j = json_object_get(o, key);

    if (j == NULL || json_is_null(j))
        return NULL;
    if (!json_is_string(j)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(j);
}

struct toxic *ctl_toxic_create(struct proxy *p, json_t *body, int *status,
                               char *err, size_t errlen)
{
    const char *name, *type_name, *stream_text;
    char defname[TOXIC_NAME_MAX];
    const struct toxic_type *type;
    enum toxic_stream stream = TOXIC_DOWNSTREAM;
    struct toxic *t;
    bool bad = false;

    *status = 400;
    if (!json_is_object(body)) {
        snprintf(err, errlen, "bad request body: expected a JSON object");
        return NULL;
    }
    name = str_field(body, "name", &bad);
    type_name = str_field(body, "type", &bad);
    stream_text = str_field(body, "stream", &bad);
    if (bad) {
        snprintf(err, errlen, "bad request body: name, type and stream are "
                 "strings");
        return NULL;
    }
    if (name_check(body, "toxic", err, errlen) < 0)
        return NULL;
    if (stream_text == NULL)
        stream_text = "downstream";
    if (toxic_stream_parse(stream_text, &stream) < 0) {
        snprintf(err, errlen,
                 "stream was invalid, can be either upstream or downstream");
        return NULL;
    }
    if (name == NULL || name[0] == '\0') {
        snprintf(defname, sizeof(defname), "%s_%s",
                 type_name != NULL ? type_name : "", stream_text);
        name = defname;
    }
    type = type_name != NULL ? toxic_type_find(type_name) : NULL;
    if (type == NULL) {
        snprintf(err, errlen, "invalid toxic type");
        return NULL;
    }
    if (type->behav != NULL && type->behav->tls && !p->tls.implicit_server) {
        snprintf(err, errlen, "%s acts on TLS handshakes: the proxy does not "
                 "terminate TLS (\"proxy_tls\": true)", type->name);
        return NULL;
    }
    if (type->behav != NULL &&
        behav_check_proto(type->behav, p->conf->proto->name, err, errlen) < 0)
        return NULL;
    if (proxy_find_toxic(p, name) != NULL) {
        *status = 409;
        snprintf(err, errlen, "toxic already exists");
        return NULL;
    }
    t = toxic_create(type, name, stream, stream_text);
    if (t == NULL) {
        *status = 500;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (set_attributes(t, json_object_get(body, "attributes"), p->conf->proto,
                       err, errlen) < 0 ||
        set_toxicity(t, json_object_get(body, "toxicity"), err, errlen) < 0) {
        toxic_destroy(t);
        return NULL;
    }
    if (proxy_add_toxic(p, t) < 0) {
        toxic_destroy(t);
        snprintf(err, errlen, "too many toxics on this proxy (%d)", TOXIC_MAX);
        return NULL;
    }
    return t;
}

int ctl_toxic_update(struct toxic *t, json_t *body,
                     const struct proto_ops *proto, char *err, size_t errlen)
{
    double was = t->toxicity;

    if (!json_is_object(body)) {
        snprintf(err, errlen, "bad request body: expected a JSON object");
        return -1;
    }
    if (set_toxicity(t, json_object_get(body, "toxicity"), err, errlen) < 0)
        return -1;
    if (set_attributes(t, json_object_get(body, "attributes"), proto, err,
                       errlen) < 0) {
        t->toxicity = was;
        return -1;
    }
    return 0;
}

#define TLS_KEYS_MAX 8 /* pairs tls_settings() gives, at most 8 (no
                          file is written through the API: the CA goes
                          where the server's -tls-ca-out says) */

/* "proxy_tls": true or {"cert", "key"} and "backend_tls": true or
 * {"ca", "insecure", "cert", "key"} of a proxy, as pairs of settings keys
 * and values (the strings live in body). Returns 0, or -1 with err. */
static int tls_settings(json_t *body, const char **out, char *err,
                        size_t errlen)
{
    static const struct {
        const char *object, *key, *setting;
    } keys[] = {
        { "proxy_tls", "cert", "tls_cert" },
        { "proxy_tls", "key", "tls_key" },
        { "backend_tls", "ca", "backend_ca" },
        { "backend_tls", "insecure", "backend_tls_insecure" },
        { "backend_tls", "cert", "backend_cert" },
        { "backend_tls", "key", "backend_key" },
    };
    int n = 0;

    for (int k = 0; k < 2; k++) {
        const char *object = k == 0 ? "proxy_tls" : "backend_tls";
        json_t *o = json_object_get(body, object), *v;
        const char *key;
        if (o == NULL || json_is_null(o))
            continue;
        if (json_is_false(o)) { /* over the server's -proxy-tls */
            out[n++] = object;
            out[n++] = "false";
            continue;
        }
        if (!json_is_true(o) && !json_is_object(o)) {
            snprintf(err, errlen, "%s: expected true or an object", object);
            return -1;
        }
        out[n++] = object;
        out[n++] = "true";
        json_object_foreach(json_is_object(o) ? o : NULL, key, v) {
            size_t i = 0;
            while (i < sizeof(keys) / sizeof(keys[0]) &&
                   (strcmp(keys[i].object, object) != 0 ||
                    strcmp(keys[i].key, key) != 0))
                i++;
            if (i == sizeof(keys) / sizeof(keys[0])) {
                snprintf(err, errlen, "%s: unknown field '%s'", object, key);
                return -1;
            }
            if (json_is_boolean(v) && strcmp(key, "insecure") == 0) {
                out[n++] = keys[i].setting;
                out[n++] = json_is_true(v) ? "true" : "false";
            } else if (json_is_string(v)) {
                out[n++] = keys[i].setting;
                out[n++] = json_string_value(v);
            } else {
                snprintf(err, errlen, "%s.%s: expected a %s", object, key,
                         strcmp(key, "insecure") == 0 ? "boolean" : "string");
                return -1;
            }
        }
    }
    out[n] = NULL;
    return 0;
}

static char *tls_given_of(json_t *entry);

struct proxy *ctl_proxy_create(struct server *srv, json_t *body, int *status,
                               char *err, size_t errlen)
{
    const char *name, *listen, *upstream, *protocol;
    const char *tls[2 * TLS_KEYS_MAX + 1];
    json_t *enabled, *toxics, *t;
    struct proxy *p;
    bool bad = false;
    size_t i;

    *status = 400;
    if (!json_is_object(body)) {
        snprintf(err, errlen, "bad request body: expected a JSON object");
        return NULL;
    }
    name = str_field(body, "name", &bad);
    listen = str_field(body, "listen", &bad);
    upstream = str_field(body, "upstream", &bad);
    protocol = str_field(body, "protocol", &bad);
    enabled = json_object_get(body, "enabled");
    toxics = json_object_get(body, "toxics");
    if (bad || (enabled != NULL && !json_is_null(enabled) &&
                !json_is_boolean(enabled)) ||
        (toxics != NULL && !json_is_null(toxics) && !json_is_array(toxics))) {
        snprintf(err, errlen, "bad request body: name, listen, upstream and "
                 "protocol are strings, enabled a boolean, toxics an array");
        return NULL;
    }
    if (name_check(body, "proxy", err, errlen) < 0)
        return NULL;
    if (name == NULL || name[0] == '\0') {
        snprintf(err, errlen, "missing required field: name");
        return NULL;
    }
    if (upstream == NULL || upstream[0] == '\0') {
        snprintf(err, errlen, "missing required field: upstream");
        return NULL;
    }
    if (tls_settings(body, tls, err, errlen) < 0)
        return NULL;
    p = server_create_proxy(srv, name, listen != NULL && listen[0] != '\0'
                                           ? listen
                                           : "127.0.0.1:0",
                            upstream, protocol, tls,
                            enabled == NULL || !json_is_false(enabled), status,
                            err, errlen);
    if (p == NULL)
        return NULL;
    p->tls_given = tls_given_of(body);
    json_array_foreach(toxics != NULL && json_is_array(toxics) ? toxics : NULL,
                       i, t) {
        int st;
        if (ctl_toxic_create(p, t, &st, err, errlen) == NULL) {
            *status = st;
            server_delete(srv, p);
            return NULL;
        }
    }
    return p;
}

/* An entry's "proxy_tls" and "backend_tls" as one canonical text (keys
 * sorted, true and {} the same, "insecure": false dropped), NULL when it
 * has neither: equal settings give equal texts. Returns a malloc'd
 * string. */
static char *tls_given_of(json_t *entry)
{
    json_t *o = json_object();
    char *text = NULL;
    bool any = false;

    for (int k = 0; k < 2 && o != NULL; k++) {
        const char *key = k == 0 ? "proxy_tls" : "backend_tls";
        json_t *v = json_object_get(entry, key), *n;
        if (v == NULL || json_is_null(v))
            continue;
        any = true;
        if (!json_is_object(v)) {
            json_object_set(o, key, v);
            continue;
        }
        n = json_deep_copy(v);
        if (json_is_false(json_object_get(n, "insecure")))
            json_object_del(n, "insecure");
        json_object_set_new(o, key, json_object_size(n) == 0 ? json_true() : n);
        if (json_object_size(n) == 0)
            json_decref(n);
    }
    if (any && o != NULL)
        text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

/* An entry equal to a proxy that exists: same listen, upstream and TLS. */
static bool same_proxy(const struct proxy *p, json_t *entry)
{
    const char *listen = json_string_value(json_object_get(entry, "listen"));
    const char *upstream = json_string_value(json_object_get(entry, "upstream"));
    char bound[300];

    char *given;
    bool same_tls;

    if (upstream == NULL || strcmp(upstream, p->upstream_text) != 0)
        return false;
    given = tls_given_of(entry);
    same_tls = given == NULL ? p->tls_given == NULL
                             : p->tls_given != NULL && strcmp(given, p->tls_given) == 0;
    free(given);
    if (!same_tls)
        return false;
    if (listen == NULL)
        return true;
    return strcmp(listen, p->listen_text) == 0 ||
           strcmp(listen, p->listen_asked) == 0 ||
           strcmp(listen, proxy_listen_text(p, bound, sizeof(bound))) == 0;
}

json_t *ctl_populate_check(struct server *srv, json_t *body, char *err,
                           size_t errlen)
{
    json_t *list = body, *e;
    size_t i;

    if (json_is_object(body) && json_is_array(json_object_get(body, "proxies")))
        list = json_object_get(body, "proxies");
    if (!json_is_array(list)) {
        snprintf(err, errlen, "bad request body: expected an array of proxies");
        return NULL;
    }
    /* every entry is checked before anything is created */
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *up = json_string_value(json_object_get(e, "upstream"));
        if (!json_is_object(e)) {
            snprintf(err, errlen, "bad request body: proxy %zu is not an "
                     "object", i + 1);
            return NULL;
        }
        if (name == NULL || name[0] == '\0') {
            snprintf(err, errlen, "missing required field: name at proxy %zu",
                     i + 1);
            return NULL;
        }
        if (up == NULL || up[0] == '\0') {
            snprintf(err, errlen,
                     "missing required field: upstream at proxy %zu", i + 1);
            return NULL;
        }
        if (name_check(e, "proxy", err, errlen) < 0) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " at proxy %zu", i + 1);
            return NULL;
        }
        /* TLS files that do not load fail here, before a proxy is
         * replaced by one that cannot be made */
        if (json_object_get(e, "proxy_tls") != NULL ||
            json_object_get(e, "backend_tls") != NULL) {
            const char *tls[2 * TLS_KEYS_MAX + 1];
            const char *listen = json_string_value(json_object_get(e, "listen"));
            if (tls_settings(e, tls, err, errlen) < 0 ||
                server_check_tls(srv, listen != NULL && listen[0] != '\0'
                                          ? listen : "127.0.0.1:0",
                                 up, tls, err, errlen) < 0) {
                size_t n = strlen(err);
                snprintf(err + n, errlen - n, " at proxy %zu", i + 1);
                return NULL;
            }
        }
    }
    return list;
}

json_t *ctl_populate(struct server *srv, json_t *body, int *status,
                     json_t **done, char *err, size_t errlen)
{
    json_t *list, *e, *out;
    size_t i;

    *status = 400;
    *done = NULL;
    list = ctl_populate_check(srv, body, err, errlen);
    if (list == NULL)
        return NULL;
    out = json_array();
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        struct proxy *p = server_find(srv, name);
        if (p != NULL && same_proxy(p, e)) {
            json_array_append_new(out, ctl_proxy_json(p));
            continue;
        }
        if (p != NULL)
            server_delete(srv, p);
        p = ctl_proxy_create(srv, e, status, err, errlen);
        if (p == NULL) {
            *done = out;
            return NULL;
        }
        json_array_append_new(out, ctl_proxy_json(p));
    }
    return out;
}

/* Applies one behavior's options (its own and the target options) from a
 * JSON object to a conf. */
static int apply_options(struct proxy_conf *c, int b, json_t *opts,
                         bool skip_name, char *name, size_t namelen,
                         char *err, size_t errlen)
{
    const struct behav_ops *ops = behav_at(b);
    const char *key;
    char why[300];
    json_t *v;

    json_object_foreach(opts, key, v) {
        int rc;
        if (skip_name && (strcmp(key, "name") == 0 ||
                          strcmp(key, "options") == 0 ||
                          strcmp(key, "schedule") == 0))
            continue;
        rc = ctl_inst_set(&c->behav[b], key, v, err, errlen);
        if (rc == -ENOENT)
            snprintf(err, errlen, "the '%s' behavior has no option '%s'",
                     ops->name, key);
        if (rc < 0) {
            snprintf(name, namelen, "%s", key);
            return -1;
        }
    }
    if (target_check(c->behav[b].target, c->proto, false, why,
                     sizeof(why)) < 0) {
        snprintf(name, namelen, "%s",
                 strncmp(why, "window", 6) == 0 ? "window" : "match");
        snprintf(err, errlen, "bad request body: %s", why);
        return -1;
    }
    return 0;
}

int ctl_behavior_apply(struct proxy *p, json_t *body, char *name,
                       size_t namelen, char *err, size_t errlen)
{
    char why[600];
    json_t *jname, *opts;
    struct proxy_conf *c;
    struct mix m;
    const char *spec;
    int b;

    name[0] = '\0';
    if (!json_is_object(body)) {
        snprintf(err, errlen, "the value is not a valid json object");
        return -1;
    }
    jname = json_object_get(body, "name");
    if (json_object_get(body, "schedule") != NULL) {
        if (json_object_size(body) != 1) {
            snprintf(name, namelen, "schedule");
            snprintf(err, errlen, "a schedule comes alone: its phases name "
                     "the behaviors and their options");
            return -1;
        }
        spec = "dummy"; /* the schedule decides */
    } else if (!json_is_string(jname)) {
        snprintf(err, errlen, "the value should contain a \"name\" key");
        return -1;
    } else {
        spec = json_string_value(jname);
    }
    b = behav_find(spec);
    if (b >= 0) {
        m.n = 1;
        m.e[0].pct = 100;
        m.e[0].behav = b;
    } else if (strchr(spec, ':') == NULL ||
               mix_parse(spec, &m, why, sizeof(why)) < 0) {
        snprintf(name, namelen, "name");
        snprintf(err, errlen, "the '%s' behavior does not exist", spec);
        return -1;
    }
    if (mix_check_proto(&m, p->conf->proto->name, err, errlen) < 0) {
        snprintf(name, namelen, "name");
        return -1;
    }
    c = proxy_conf_clone(p->conf);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->mix = m;
    /* a behavior set again targets every request unless this body says
     * otherwise: targets do not linger from an earlier PUT */
    for (int i = 0; i < m.n; i++) {
        union opt_val *t = c->behav[m.e[i].behav].target;
        opt_free(target_opts, t);
        opt_defaults(target_opts, t);
    }
    if (json_object_get(body, "schedule") != NULL) {
        c->sched = ctl_schedule_from_json(json_object_get(body, "schedule"),
                                          c->proto, err, errlen);
        if (c->sched == NULL) {
            snprintf(name, namelen, "schedule");
            goto bad;
        }
    }
    /* options at the top level (the original's) for a single behavior,
     * and per behavior under "options" */
    if (b >= 0 && apply_options(c, b, body, true, name, namelen, err, errlen) < 0)
        goto bad;
    opts = json_object_get(body, "options");
    if (json_is_object(opts)) {
        const char *key;
        json_t *v;
        json_object_foreach(opts, key, v) {
            int k = behav_find(key);
            if (k < 0 || !json_is_object(v)) {
                snprintf(name, namelen, "options");
                snprintf(err, errlen, "the '%s' behavior does not exist", key);
                goto bad;
            }
            if (apply_options(c, k, v, false, name, namelen, err, errlen) < 0)
                goto bad;
        }
    }
    log_info("proxy %s: behavior set to %s", p->name, spec);
    proxy_set_conf(p, c);
    return 0;
bad:
    proxy_conf_destroy(c);
    return -1;
}
