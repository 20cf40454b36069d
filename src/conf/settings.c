/*
 * settings: defaults and validated setters (see settings.h).
 */
#include "conf/settings.h"

#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proto/proto.h"

void settings_init(struct settings *st)
{
    char err[256];

    memset(st, 0, sizeof(*st));
    addr_parse("localhost:8000", &st->proxy, err, sizeof(err));
    addr_parse("localhost:80", &st->backend, err, sizeof(err));
    strcpy(st->protocol, "tcp");
    strcpy(st->behavior, "100:dummy");
    mix_parse(st->behavior, &st->mix, err, sizeof(err));
    st->timeout = 30;
    st->backlog = 8192;
    st->log_level = LOG_INFO;
    addr_parse("localhost:8080", &st->http_addr, err, sizeof(err));
    {
        const char *token = getenv("VAURIEN_API_TOKEN");
        if (token != NULL && strlen(token) < sizeof(st->api_token))
            strcpy(st->api_token, token);
    }
    strcpy(st->log_output, "-");
    st->journal_size = 10000;
    strcpy(st->statsd_host, "localhost");
    st->statsd_port = 8125;
    strcpy(st->statsd_prefix, "vaurien");
    st->statsd_sample_rate = 1.0;
    for (int i = 0; i < behav_count(); i++)
        behav_inst_init(&st->behav[i], behav_at(i));
    for (int i = 0; i < proto_count(); i++)
        opt_defaults(proto_at(i)->opts, st->proto[i]);
}

void settings_sync(struct settings *st)
{
    for (int i = 0; i < behav_count(); i++)
        if (st->behav[i].ops == NULL)
            behav_inst_init(&st->behav[i], behav_at(i));
    for (int i = 0; i < proto_count(); i++)
        if (proto_at(i)->script != NULL)
            opt_defaults(proto_at(i)->opts, st->proto[i]);
}

void settings_deinit(struct settings *st)
{
    for (int i = 0; i < behav_count(); i++)
        behav_inst_deinit(&st->behav[i]);
    for (int i = 0; i < proto_count(); i++)
        opt_free(proto_at(i)->opts, st->proto[i]);
}

/* One of two words: *on is whether it is the second. */
static int choice(bool *on, const char *value, const char *off_word,
                  const char *on_word, char *err, size_t errlen)
{
    if (strcmp(value, off_word) != 0 && strcmp(value, on_word) != 0) {
        snprintf(err, errlen, "expected %s or %s, got '%s'", off_word, on_word,
                 value);
        return -EINVAL;
    }
    *on = strcmp(value, on_word) == 0;
    return 0;
}

static bool key_is(const char *key, const char *name)
{
    for (; *key != '\0' && *name != '\0'; key++, name++) {
        char k = *key == '-' ? '_' : *key;
        if (k != *name)
            return false;
    }
    return *key == *name;
}

static int copy_text(char *dst, size_t dstlen, const char *value,
                     const char *key, char *err, size_t errlen)
{
    if (strlen(value) >= dstlen) {
        (void)key;
        snprintf(err, errlen, "value too long");
        return -EINVAL;
    }
    strcpy(dst, value);
    return 0;
}

static int set_addr(struct addr *a, const char *value, char *err,
                    size_t errlen)
{
    return addr_parse(value, a, err, errlen);
}

int settings_set(struct settings *st, const char *key, const char *value,
                 char *err, size_t errlen)
{
    char why[512];
    char *end;

    if (key_is(key, "proxy"))
        return set_addr(&st->proxy, value, err, errlen);
    if (key_is(key, "backend"))
        return set_addr(&st->backend, value, err, errlen);
    if (key_is(key, "protocol")) {
        if (proto_check_name(value, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s", why);
            return -EINVAL;
        }
        return copy_text(st->protocol, sizeof(st->protocol), value, key, err,
                         errlen);
    }
    if (key_is(key, "behavior")) {
        struct mix m;
        if (mix_parse(value, &m, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s", why);
            return -EINVAL;
        }
        if (copy_text(st->behavior, sizeof(st->behavior), value, key, err,
                      errlen) < 0)
            return -EINVAL;
        st->mix = m;
        return 0;
    }
    if (key_is(key, "timeout")) {
        double t;
        errno = 0;
        t = strtod(value, &end);
        if (value[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(t) ||
            t <= 0 || t > 1e6) {
            snprintf(err, errlen,
                     "expected a number of seconds > 0, got '%s'",
                     value);
            return -EINVAL;
        }
        st->timeout = t;
        return 0;
    }
    if (key_is(key, "backlog")) {
        long v;
        errno = 0;
        v = strtol(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || errno != 0 || v < 1 ||
            v > 1000000) {
            snprintf(err, errlen, "expected an integer >= 1, got '%s'",
                     value);
            return -EINVAL;
        }
        st->backlog = (int)v;
        return 0;
    }
    if (key_is(key, "log_level")) {
        int l = log_level_parse(value);
        if (l < 0) {
            snprintf(err, errlen, "'%s' is not one of debug, info, "
                     "warning, error, critical", value);
            return -EINVAL;
        }
        st->log_level = l;
        return 0;
    }
    if (key_is(key, "log_output"))
        return copy_text(st->log_output, sizeof(st->log_output), value, key,
                         err, errlen);
    if (key_is(key, "max_connections") || key_is(key, "max_connections_total")) {
        long v;
        errno = 0;
        v = strtol(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || errno != 0 || v < 0) {
            snprintf(err, errlen, "expected an integer >= 0 (0: no limit), "
                     "got '%s'", value);
            return -EINVAL;
        }
        if (key_is(key, "max_connections"))
            st->max_connections = v;
        else
            st->max_total = v;
        return 0;
    }
    if (key_is(key, "overflow"))
        return choice(&st->overflow_backlog, value, "close", "backlog", err,
                      errlen);
    {
        static const struct {
            const char *key;
            size_t off;
        } files[] = {
            { "tls_cert", offsetof(struct settings, tls_cert) },
            { "tls_key", offsetof(struct settings, tls_key) },
            { "tls_ca_out", offsetof(struct settings, tls_ca_out) },
            { "backend_ca", offsetof(struct settings, backend_ca) },
            { "backend_cert", offsetof(struct settings, backend_cert) },
            { "backend_key", offsetof(struct settings, backend_key) },
        };
        static const struct {
            const char *key;
            size_t off;
        } switches[] = {
            { "proxy_tls", offsetof(struct settings, proxy_tls) },
            { "backend_tls", offsetof(struct settings, backend_tls) },
            { "backend_tls_insecure",
              offsetof(struct settings, backend_tls_insecure) },
            { "starttls", offsetof(struct settings, starttls) },
            { "stay_connected", offsetof(struct settings, stay_connected) },
            { "statsd", offsetof(struct settings, statsd) },
            { "statsd_enabled", offsetof(struct settings, statsd) },
            { "http", offsetof(struct settings, http) },
        };
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
            if (key_is(key, files[i].key))
                return copy_text((char *)st + files[i].off, 4096, value, key,
                                 err, errlen);
        for (size_t i = 0; i < sizeof(switches) / sizeof(switches[0]); i++)
            if (key_is(key, switches[i].key)) {
                int b = opt_parse_bool(value);
                if (b < 0) {
                    snprintf(err, errlen, "expected true or false, got '%s'",
                             value);
                    return -EINVAL;
                }
                *(bool *)((char *)st + switches[i].off) = b;
                return 0;
            }
    }
    if (key_is(key, "journal"))
        return copy_text(st->journal, sizeof(st->journal), value, key, err,
                         errlen);
    if (key_is(key, "replay"))
        return copy_text(st->replay, sizeof(st->replay), value, key, err,
                         errlen);
    if (key_is(key, "journal_size") || key_is(key, "statsd_port")) {
        long v;
        bool port = key_is(key, "statsd_port");
        errno = 0;
        v = strtol(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || errno != 0 || v < (port ? 1 : 0) ||
            v > (port ? 65535 : 1000000)) {
            snprintf(err, errlen, port ? "expected a port 1-65535, got '%s'"
                                       : "expected 0 (off) to 1000000 events, "
                                         "got '%s'", value);
            return -EINVAL;
        }
        if (port)
            st->statsd_port = (int)v;
        else
            st->journal_size = v;
        return 0;
    }
    if (key_is(key, "statsd_host"))
        return copy_text(st->statsd_host, sizeof(st->statsd_host), value, key,
                         err, errlen);
    if (key_is(key, "statsd_prefix")) {
        if (value[0] == '\0') {
            snprintf(err, errlen, "a statsd prefix is not empty");
            return -EINVAL;
        }
        for (const char *c = value; *c != '\0'; c++)
            if (*c == ':' || *c == '|' || *c == '@' || (unsigned char)*c <= ' ') {
                snprintf(err, errlen, "a statsd prefix has no ':', '|', '@' "
                         "or spaces, got '%s'", value);
                return -EINVAL;
            }
        return copy_text(st->statsd_prefix, sizeof(st->statsd_prefix), value,
                         key, err, errlen);
    }
    if (key_is(key, "statsd_sample_rate")) {
        double r;
        errno = 0;
        r = strtod(value, &end);
        if (value[0] == '\0' || *end != '\0' || errno != 0 || !(r > 0 && r <= 1)) {
            snprintf(err, errlen, "expected a rate > 0 and <= 1, got '%s'", value);
            return -EINVAL;
        }
        st->statsd_sample_rate = r;
        return 0;
    }
    if (key_is(key, "log_format"))
        return choice(&st->log_json, value, "text", "json", err, errlen);
    if (key_is(key, "api_token"))
        return copy_text(st->api_token, sizeof(st->api_token), value, key, err,
                         errlen);
    if (key_is(key, "http_host")) {
        if (strlen(value) >= ADDR_HOST_MAX) {
            snprintf(err, errlen, "host name too long");
            return -EINVAL;
        }
        strcpy(st->http_addr.host, value);
        return 0;
    }
    if (key_is(key, "http_port")) {
        long v;
        errno = 0;
        v = strtol(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || errno != 0 || v < 0 ||
            v > 65535) {
            snprintf(err, errlen, "expected a port 0-65535, got '%s'", value);
            return -EINVAL;
        }
        st->http_addr.port = (unsigned short)v;
        return 0;
    }
    if (key_is(key, "seed")) {
        unsigned long long v;
        errno = 0;
        v = strtoull(value, &end, 10);
        if (value[0] == '\0' || value[0] == '-' || *end != '\0' || errno != 0) {
            snprintf(err, errlen, "expected an integer >= 0, got '%s'",
                     value);
            return -EINVAL;
        }
        st->seed = v;
        st->seed_set = true;
        return 0;
    }
    snprintf(err, errlen, "unknown setting '%s'", key);
    return -ENOENT;
}

int settings_set_plugin(struct settings *st, const char *kind,
                        const char *name, const char *opt, const char *value,
                        char *err, size_t errlen)
{
    const struct opt_decl *decls;
    union opt_val *vals;
    char why[300];
    int i, o;

    if (strcmp(kind, "behavior") == 0) {
        i = behav_find(name);
        if (i < 0) {
            snprintf(err, errlen, "'%s' is an unknown behavior. Pick one of: %s",
                     name, behav_names());
            return -ENOENT;
        }
        const struct opt_decl *d;
        union opt_val *slot = behav_opt_slot(&st->behav[i], opt, &d);
        if (slot == NULL) {
            snprintf(err, errlen, "%s '%s' has no option '%s'", kind, name,
                     opt);
            return -ENOENT;
        }
        if (opt_parse(d, value, slot, why, sizeof(why)) < 0 ||
            (d == &target_opts[TARGET_WINDOW] || d == &target_opts[TARGET_MATCH] ?
             target_check(st->behav[i].target, NULL, false, why,
                          sizeof(why)) : 0) < 0) {
            snprintf(err, errlen, "%s '%s': %s", kind, name, why);
            return -EINVAL;
        }
        return 0;
    } else {
        i = proto_find(name);
        if (i < 0) {
            proto_check_name(name, err, errlen);
            return -ENOENT;
        }
        decls = proto_at(i)->opts;
        vals = st->proto[i];
    }
    o = opt_find(decls, opt);
    if (o < 0) {
        snprintf(err, errlen, "%s '%s' has no option '%s'", kind, name, opt);
        return -ENOENT;
    }
    if (opt_parse(&decls[o], value, &vals[o], why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s '%s': %s", kind, name, why);
        return -EINVAL;
    }
    return 0;
}

const union opt_val *settings_proto_opts(const struct settings *st)
{
    return st->proto[proto_find(st->protocol)];
}
