/*
 * scripts: custom behaviors and protocols from JSON (see scripts.h).
 */
#include "ctl/scripts.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "behav/behav.h"
#include "core/log.h"
#include "core/script.h"
#include "proto/proto.h"

int ctl_script_load(json_t *e, bool behavior, const char *dir, char *err,
                    size_t errlen)
{
    const char *name = json_string_value(json_object_get(e, "name"));
    json_t *script = json_object_get(e, "script");
    const char *file = json_string_value(json_object_get(e, "file"));
    const char *key;
    json_t *v;

    if (!json_is_object(e)) {
        snprintf(err, errlen, "expected an object {\"name\": ..., "
                 "\"script\": ...}");
        return -EINVAL;
    }
    json_object_foreach(e, key, v) {
        if (strcmp(key, "name") != 0 && strcmp(key, "script") != 0 &&
            (dir == NULL || strcmp(key, "file") != 0)) {
            snprintf(err, errlen, "unknown field '%s' (name, script%s)", key,
                     dir != NULL ? ", file" : "");
            return -EINVAL;
        }
    }
    if (name == NULL) {
        snprintf(err, errlen, "missing required field: name");
        return -EINVAL;
    }
    if (strlen(name) != json_string_length(json_object_get(e, "name"))) {
        snprintf(err, errlen, "name: a NUL byte in the name");
        return -EINVAL;
    }
    if (script != NULL && file != NULL) {
        snprintf(err, errlen, "%s: give script or file, not both", name);
        return -EINVAL;
    }
    if (file != NULL) {
        char path[8192];
        script_path(dir, file, path, sizeof(path));
        return behavior ? behav_lua_load_file(name, path, err, errlen)
                        : proto_lua_load_file(name, path, err, errlen);
    }
    if (!json_is_string(script)) {
        snprintf(err, errlen, "%s: missing required field: script (the Lua "
                 "source, a string)", name);
        return -EINVAL;
    }
    return behavior ? behav_lua_load(name, json_string_value(script),
                                     json_string_length(script), "", err,
                                     errlen)
                    : proto_lua_load(name, json_string_value(script),
                                     json_string_length(script), "", err,
                                     errlen);
}

int ctl_scripts_load(json_t *config, const char *dir, bool keep_going,
                     char *err, size_t errlen)
{
    static const char *const lists[] = { "protocols", "behaviors" };

    if (!json_is_object(config))
        return 0;
    for (int k = 0; k < 2; k++) {
        json_t *list = json_object_get(config, lists[k]), *e;
        size_t i;
        if (list == NULL)
            continue;
        if (!json_is_array(list)) {
            snprintf(err, errlen, "%s: expected a list of {\"name\", "
                     "\"script\" or \"file\"}", lists[k]);
            return -EINVAL;
        }
        json_array_foreach(list, i, e) {
            char why[600];
            int rc = ctl_script_load(e, k == 1, dir, why, sizeof(why));
            if (rc == 0)
                continue;
            snprintf(err, errlen, "%s %zu: %s", lists[k], i + 1, why);
            if (!keep_going)
                return rc;
            log_error("%s; the one loaded before stays", err);
        }
    }
    return 0;
}
