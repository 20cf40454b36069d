/*
 * replay: a sorted table of recorded faults (see replay.h).
 */
#include "behav/replay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct replay_rec {
    uint64_t conn, index;
    uint32_t proxy; /* index in names */
    uint32_t inst;  /* index in insts */
    uint32_t order; /* as added: the first of a request wins */
    double held_ms; /* held then; < 0: not recorded */
};

struct replay {
    struct replay_rec *recs;
    size_t n, cap;
    bool sorted;
    struct replay_inst {
        int behav;
        char *key;
        struct behav_inst b;
    } *insts;
    int ninsts;
    char *names[REPLAY_PROXIES_MAX];
    int nnames;
};

static struct replay *current;

struct replay *replay_create(void)
{
    return calloc(1, sizeof(struct replay));
}

void replay_destroy(struct replay *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->ninsts; i++) {
        behav_inst_deinit(&r->insts[i].b);
        free(r->insts[i].key);
    }
    for (int i = 0; i < r->nnames; i++)
        free(r->names[i]);
    free(r->insts);
    free(r->recs);
    free(r);
}

int replay_find_inst(const struct replay *r, int behav, const char *key)
{
    for (int i = 0; i < r->ninsts; i++)
        if (r->insts[i].behav == behav && strcmp(r->insts[i].key, key) == 0)
            return i;
    return -1;
}

int replay_add_inst(struct replay *r, int behav, const char *key,
                    struct behav_inst *b)
{
    struct replay_inst *ri;

    if (r->ninsts == REPLAY_INSTS_MAX)
        return -ENOSPC;
    if (r->insts == NULL) {
        r->insts = calloc(REPLAY_INSTS_MAX, sizeof(*r->insts));
        if (r->insts == NULL)
            return -ENOMEM;
    }
    ri = &r->insts[r->ninsts];
    ri->key = strdup(key);
    if (ri->key == NULL)
        return -ENOMEM;
    ri->behav = behav;
    ri->b = *b;
    return r->ninsts++;
}

/* The journal keeps a proxy's name cut to REPLAY_NAME_MAX bytes. */
static int name_index(const struct replay *r, const char *proxy)
{
    size_t n = strnlen(proxy, REPLAY_NAME_MAX);

    for (int i = 0; i < r->nnames; i++)
        if (strncmp(r->names[i], proxy, n) == 0 && r->names[i][n] == '\0')
            return i;
    return -1;
}

int replay_add(struct replay *r, const char *proxy, uint64_t conn,
               uint64_t index, int inst, double held_ms)
{
    int p = name_index(r, proxy);

    if (r->n == REPLAY_EVENTS_MAX)
        return -ENOSPC;
    if (p < 0) {
        if (r->nnames == REPLAY_PROXIES_MAX)
            return -ENOSPC;
        r->names[r->nnames] = strndup(proxy, REPLAY_NAME_MAX);
        if (r->names[r->nnames] == NULL)
            return -ENOMEM;
        p = r->nnames++;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct replay_rec *recs = realloc(r->recs, cap * sizeof(*recs));
        if (recs == NULL)
            return -ENOMEM;
        r->recs = recs;
        r->cap = cap;
    }
    r->recs[r->n] = (struct replay_rec){ conn, index, (uint32_t)p,
                                         (uint32_t)inst, (uint32_t)r->n,
                                         held_ms };
    r->n++;
    r->sorted = false;
    return 0;
}

size_t replay_count(const struct replay *r)
{
    return r->n;
}

static int cmp_rec(const void *a, const void *b)
{
    const struct replay_rec *x = a, *y = b;

    if (x->proxy != y->proxy)
        return x->proxy < y->proxy ? -1 : 1;
    if (x->conn != y->conn)
        return x->conn < y->conn ? -1 : 1;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

void replay_set(struct replay *r)
{
    if (r != NULL && !r->sorted) {
        qsort(r->recs, r->n, sizeof(r->recs[0]), cmp_rec);
        r->sorted = true;
    }
    replay_destroy(current);
    current = r;
}

const struct replay *replay_current(void)
{
    return current;
}

struct behav_inst *replay_lookup(const char *proxy, uint64_t conn,
                                 uint64_t index, double *held_ms)
{
    struct replay *r = current;
    size_t lo = 0, hi;
    int p;

    *held_ms = -1;
    if (r == NULL || (p = name_index(r, proxy)) < 0)
        return NULL;
    hi = r->n;
    while (lo < hi) { /* the first record not below (p, conn, index) */
        size_t mid = lo + (hi - lo) / 2;
        const struct replay_rec *x = &r->recs[mid];
        if (x->proxy < (uint32_t)p ||
            (x->proxy == (uint32_t)p &&
             (x->conn < conn || (x->conn == conn && x->index < index))))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->n || r->recs[lo].proxy != (uint32_t)p ||
        r->recs[lo].conn != conn || r->recs[lo].index != index)
        return NULL;
    struct behav_inst *b = &r->insts[r->recs[lo].inst].b;
    b->calls = 0;
    *held_ms = r->recs[lo].held_ms;
    return b;
}
