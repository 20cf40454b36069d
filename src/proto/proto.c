/*
 * proto: the registry of protocols.
 */
#include "proto/proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct proto_ops *const registry[] = {
    &proto_tcp,
};

#define NREG ((int)(sizeof(registry) / sizeof(registry[0])))

/* Protocols the original Vaurien knew that this build does not frame. */
static const char *const planned[] = { "http", "redis", "memcache", "mysql",
                                       "smtp" };

int proto_count(void)
{
    return NREG;
}

const struct proto_ops *proto_at(int i)
{
    return i >= 0 && i < NREG ? registry[i] : NULL;
}

int proto_find(const char *name)
{
    for (int i = 0; i < NREG; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return i;
    return -1;
}

int proto_check_name(const char *name, char *err, size_t errlen)
{
    if (proto_find(name) >= 0)
        return 0;
    for (size_t i = 0; i < sizeof(planned) / sizeof(planned[0]); i++) {
        if (strcmp(planned[i], name) == 0) {
            snprintf(err, errlen,
                     "protocol '%s' is not supported by this build yet; "
                     "use tcp", name);
            return -EINVAL;
        }
    }
    snprintf(err, errlen, "'%s' is an unknown protocol. Pick one of: tcp", name);
    return -EINVAL;
}
