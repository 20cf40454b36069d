/*
 * Fuzzes the control API's request bodies, both APIs: the first byte picks
 * the call (POST /proxies, POST /populate, POST and PATCH of a toxic, PUT
 * /behavior), the rest is the body. Proxies are always created disabled so
 * that nothing binds a port; every proxy made is deleted after each input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/log.h"
#include "ctl/api.h"
#include "ctl/json.h"
#include "net/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static struct settings defaults;
static struct server srv;

static void force_disabled(json_t *j)
{
    size_t i;
    json_t *e;

    if (json_is_object(j))
        json_object_set_new(j, "enabled", json_false());
    json_array_foreach(json_is_array(j) ? j : NULL, i, e)
        if (json_is_object(e))
            json_object_set_new(e, "enabled", json_false());
    if (json_is_object(j) && json_is_array(json_object_get(j, "proxies")))
        force_disabled(json_object_get(j, "proxies"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024], name[256];
    json_t *body, *out, *done;
    struct proxy *p, *fixed;
    int status;
    struct toxic *t;

    if (base == NULL) {
        log_init("/dev/null", LOG_CRITICAL);
        base = event_base_new();
        settings_init(&defaults);
        server_init(&srv, base, NULL, &defaults);
    }
    if (size < 1)
        return 0;
    if (data[0] == 0xff) {
        /* the Host and Origin guard: two NUL-separated headers */
        char *text = malloc(size + 1), *origin;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        origin = text + strlen(text) + 1;
        for (int loopback = 0; loopback < 2; loopback++)
            (void)api_guard(loopback, 8474, text,
                            origin < text + size ? origin : NULL);
        free(text);
        return 0;
    }
    body = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
    if (body == NULL)
        return 0;
    fixed = server_create_proxy(&srv, "fixed", "127.0.0.1:0", "127.0.0.1:1", NULL,
                                NULL, false, &status, err, sizeof(err));
    switch (data[0] % 5) {
    case 0:
        force_disabled(body);
        ctl_proxy_create(&srv, body, &status, err, sizeof(err));
        break;
    case 1:
        force_disabled(body);
        out = ctl_populate(&srv, body, &status, &done, err, sizeof(err));
        json_decref(out);
        json_decref(done);
        break;
    case 2:
        t = ctl_toxic_create(fixed, body, &status, err, sizeof(err));
        if (t != NULL)
            json_decref(ctl_toxic_json(t));
        break;
    case 3: {
        /* a toxic of the body's type (slicer when it names none), then
         * the body as its update: attributes, targets, schedules */
        const char *type = json_string_value(json_object_get(body, "type"));
        json_t *base_toxic = json_pack("{s:s}", "type",
                                       type != NULL && toxic_type_find(type)
                                           ? type : "slicer");
        t = ctl_toxic_create(fixed, base_toxic, &status, err, sizeof(err));
        json_decref(base_toxic);
        if (t != NULL && ctl_toxic_update(t, body, fixed->conf->proto, err,
                                          sizeof(err)) == 0)
            json_decref(ctl_toxic_json(t));
        break;
    }
    case 4:
        ctl_behavior_apply(fixed, body, name, sizeof(name), err, sizeof(err));
        break;
    }
    while ((p = TAILQ_FIRST(&srv.proxies)) != NULL) {
        json_t *j = ctl_proxy_json(p);
        free(ctl_json_text(j)); /* the writer of every API answer */
        json_decref(j);
        server_delete(&srv, p);
    }
    json_decref(body);
    return 0;
}
