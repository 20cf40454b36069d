/*
 * ini: reading the INI configuration with inih (see ini.h).
 */
#include "conf/ini.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "behav/behav.h"
#include "core/log.h"
#include "core/script.h"
#include "proto/proto.h"

struct ini_ctx {
    struct settings *st;
    char err[512]; /* first error */
    int failed;
    bool scripts;     /* this pass loads the `script` keys, and only them */
    char dir[4096];   /* the file's folder: relative scripts are in it */
};

/* [behavior:NAME] / [protocol:NAME] script = FILE.lua: loads the script
 * (FILE relative to the INI file's folder). */
static int load_script(struct ini_ctx *c, const char *section,
                       const char *value, char *why, size_t whylen)
{
    char path[8192];
    bool behavior = strncmp(section, "behavior:", 9) == 0;

    script_path(c->dir, value, path, sizeof(path));
    return behavior ? behav_lua_load_file(section + 9, path, why, whylen)
                    : proto_lua_load_file(section + 9, path, why, whylen);
}

/* Keys of the original's [vaurien] section that this build does not act on;
 * reading them is not an error, so the original's files keep loading. */
static const char *const ignored_keys[] = {
    "pool_max_size", "pool_timeout",
};

int ini_expand_env(const char *value, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    size_t o = 0;

    for (const char *p = value; *p != '\0';) {
        const char *add = p;
        size_t n = 1;
        if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            char name[256];
            size_t nl;
            if (close == NULL) {
                snprintf(err, errlen, "unterminated ${ in '%s'", value);
                return -EINVAL;
            }
            nl = (size_t)(close - (p + 2));
            if (nl == 0 || nl >= sizeof(name)) {
                snprintf(err, errlen, "bad variable name in '%s'", value);
                return -EINVAL;
            }
            memcpy(name, p + 2, nl);
            name[nl] = '\0';
            add = getenv(name);
            if (add == NULL) {
                snprintf(err, errlen, "environment variable '%s' is not set",
                         name);
                return -EINVAL;
            }
            n = strlen(add);
            p = close + 1;
        } else {
            p++;
        }
        if (o + n >= outlen) {
            snprintf(err, errlen, "value too long");
            return -EINVAL;
        }
        memcpy(out + o, add, n);
        o += n;
    }
    out[o] = '\0';
    return 0;
}

static int conf_ini_handler(void *user, const char *section, const char *name,
                       const char *raw)
{
    struct ini_ctx *c = user;
    char value[4096], why[400];
    int rc = 0;

    bool is_script = strcmp(name, "script") == 0 &&
                     (strncmp(section, "behavior:", 9) == 0 ||
                      strncmp(section, "protocol:", 9) == 0);

    if (c->failed || is_script != c->scripts)
        return 1;
    if (ini_expand_env(raw, value, sizeof(value), why, sizeof(why)) < 0) {
        snprintf(c->err, sizeof(c->err), "[%s] %s: %s", section, name, why);
        c->failed = 1;
        return 0;
    }
    if (is_script) {
        rc = load_script(c, section, value, why, sizeof(why));
    } else if (strcmp(section, "vaurien") == 0) {
        for (size_t i = 0; i < sizeof(ignored_keys) / sizeof(*ignored_keys); i++) {
            if (strcmp(name, ignored_keys[i]) == 0) {
                log_warn("config: [vaurien] %s is not supported by this build; "
                         "ignored", name);
                return 1;
            }
        }
        rc = settings_set(c->st, name, value, why, sizeof(why));
    } else if (strncmp(section, "behavior:", 9) == 0) {
        if (strcmp(name, "callable") == 0) {
            snprintf(why, sizeof(why),
                     "custom Python behaviors (callable) are not supported; "
                     "write the behavior in Lua and use script = FILE.lua");
            rc = -EINVAL;
        } else {
            rc = settings_set_plugin(c->st, "behavior", section + 9, name,
                                     value, why, sizeof(why));
        }
    } else if (strncmp(section, "protocol:", 9) == 0) {
        rc = settings_set_plugin(c->st, "protocol", section + 9, name, value,
                                 why, sizeof(why));
    } else if (strcmp(section, "statsd") == 0) {
        /* the original's keys: enabled, host, port, prefix, sample_rate */
        char key[80];
        snprintf(key, sizeof(key), "statsd_%s", name);
        rc = settings_set(c->st, strcmp(name, "enabled") == 0 ? "statsd" : key,
                          value, why, sizeof(why));
        if (rc == -ENOENT)
            snprintf(why, sizeof(why), "unknown key (enabled, host, port, "
                     "prefix, sample_rate)");
    } else {
        snprintf(why, sizeof(why), "unknown section");
        rc = -EINVAL;
    }
    if (rc < 0) {
        snprintf(c->err, sizeof(c->err), "[%s] %s: %s", section, name, why);
        c->failed = 1;
        return 0;
    }
    return 1;
}

static int ini_result(int rc, struct ini_ctx *c, const char *where, char *err,
                      size_t errlen)
{
    if (rc == 0)
        return 0;
    if (rc == -1) {
        snprintf(err, errlen, "config %s: %s", where, strerror(errno));
        return -errno;
    }
    if (rc == -2) {
        snprintf(err, errlen, "config %s: out of memory", where);
        return -ENOMEM;
    }
    if (c->failed)
        snprintf(err, errlen, "config %s line %d: %s", where, rc, c->err);
    else
        snprintf(err, errlen, "config %s line %d: not a section header, "
                 "key = value, or comment", where, rc);
    return -EINVAL;
}

/* Two passes: the scripts first, so that the options of a custom
 * behavior may come before its script line. */
int ini_load_file(const char *path, struct settings *st, char *err,
                  size_t errlen)
{
    struct ini_ctx c = { .st = st, .scripts = true };
    FILE *f = fopen(path, "r");
    int rc;

    if (f == NULL) {
        int e = errno;
        snprintf(err, errlen, "config %s: %s", path, strerror(e));
        return -e;
    }
    script_dir_of(path, c.dir, sizeof(c.dir));
    rc = ini_parse_file(f, conf_ini_handler, &c);
    if (rc == 0 && !c.failed) {
        settings_sync(st);
        c.scripts = false;
        rewind(f);
        rc = ini_parse_file(f, conf_ini_handler, &c);
    }
    fclose(f);
    return ini_result(rc, &c, path, err, errlen);
}

int ini_load_string(const char *text, struct settings *st, char *err,
                    size_t errlen)
{
    struct ini_ctx c = { .st = st, .scripts = true };
    int rc = ini_parse_string(text, conf_ini_handler, &c);

    if (rc == 0 && !c.failed) {
        settings_sync(st);
        c.scripts = false;
        rc = ini_parse_string(text, conf_ini_handler, &c);
    }
    return ini_result(rc, &c, "(string)", err, errlen);
}
