/*
 * mix: the behavior mix "5:error,10:delay" — a weighted, exclusive choice
 * drawn once per request, the remainder going to dummy.
 */
#ifndef VAURIEN_MIX_H
#define VAURIEN_MIX_H

#include <stddef.h>

#include "core/rng.h"

#define MIX_MAX 32

struct mix {
    int n;
    struct mix_entry {
        double pct; /* 0..100 */
        int behav;  /* index in the behavior registry */
    } e[MIX_MAX];
};

/* Parses a spec. Returns 0, or -EINVAL with a one-line message in err. */
int mix_parse(const char *spec, struct mix *m, char *err, size_t errlen);

/* Whether every behavior of the mix may be used on a proxy of protocol
 * proto (behav_check_proto()). Returns 0, or -EINVAL with a one-line
 * message in err. */
int mix_check_proto(const struct mix *m, const char *proto, char *err,
                    size_t errlen);

/* Draws one behavior index; the remainder of 100 is dummy. */
int mix_draw(const struct mix *m, struct rng *r);

/* Writes the spec back as text ("5:error,10:delay"). */
char *mix_format(const struct mix *m, char *buf, size_t len);

#endif
