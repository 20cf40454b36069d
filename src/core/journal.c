/*
 * journal: the ring of fault events, its file and its listener (see
 * journal.h).
 */
#include "core/journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jsonesc.h"

static struct journal_event *ring; /* size slots, preallocated */
static size_t size;
static uint64_t next_seq = 1;      /* the number of the next event */
static uint64_t first_seq = 1;     /* the oldest still in the ring */
static uint64_t dropped;
static uint64_t written;
static FILE *file;
static char file_path[4096];
static void (*listener)(const struct journal_event *e, void *arg);
static void *listener_arg;

static const char *const kind_names[] = {
#define JOURNAL_NAME(name, text) text,
    JOURNAL_KINDS(JOURNAL_NAME)
#undef JOURNAL_NAME
};

const char *journal_kind_name(enum journal_kind k)
{
    return (unsigned)k < JOURNAL_KIND_N ? kind_names[k] : "?";
}

int journal_init(size_t n)
{
    journal_deinit();
    if (n == 0)
        return 0;
    ring = calloc(n, sizeof(*ring));
    if (ring == NULL)
        return -ENOMEM;
    size = n;
    /* its pages are the process's from the start: the ring costs what it
     * costs at once, not as connections come (an idle one costs no more) */
    for (size_t off = 0; off < n * sizeof(*ring); off += 4096)
        ((volatile char *)ring)[off] = 0;
    return 0;
}

void journal_deinit(void)
{
    free(ring);
    ring = NULL;
    size = 0;
    next_seq = first_seq = 1;
    dropped = written = 0;
    journal_set_file("");
}

bool journal_on(void)
{
    return ring != NULL;
}

size_t journal_size(void)
{
    return size;
}

int journal_set_file(const char *path)
{
    FILE *f = NULL;

    if (path[0] != '\0') {
        f = fopen(path, "a");
        if (f == NULL)
            return -errno;
    }
    if (file != NULL)
        fclose(file);
    file = f;
    snprintf(file_path, sizeof(file_path), "%s", path);
    return 0;
}

int journal_reopen(void)
{
    char path[sizeof(file_path)];

    if (file_path[0] == '\0')
        return 0;
    memcpy(path, file_path, sizeof(path));
    return journal_set_file(path);
}

static int64_t now_ns(clockid_t c)
{
    struct timespec ts;

    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct journal_event *journal_begin(enum journal_kind kind)
{
    struct journal_event *e;

    if (ring == NULL)
        return NULL;
    e = &ring[(next_seq - 1) % size];
    memset(e, 0, offsetof(struct journal_event, proxy));
    e->proxy[0] = e->client[0] = e->behavior[0] = e->toxic[0] = '\0';
    e->request[0] = e->outcome[0] = '\0';
    e->options[0] = '\0';
    e->seq = 0; /* not readable until committed */
    e->kind = (uint8_t)kind;
    e->mono_ns = now_ns(CLOCK_MONOTONIC);
    e->wall_ns = now_ns(CLOCK_REALTIME);
    return e;
}

void journal_commit(struct journal_event *e)
{
    if (ring == NULL || e != &ring[(next_seq - 1) % size])
        return;
    if (next_seq - first_seq >= size) {
        first_seq++; /* the oldest was overwritten */
        dropped++;
    }
    e->seq = next_seq++;
    written++;
    if (file != NULL) {
        char line[4097];
        size_t n = journal_json(e, line, sizeof(line) - 1);
        line[n++] = '\n';
        fwrite(line, 1, n, file);
        fflush(file);
    }
    if (listener != NULL)
        listener(e, listener_arg);
}

void journal_each(uint64_t since, bool (*fn)(const struct journal_event *e,
                                             void *arg),
                  void *arg)
{
    uint64_t s = since + 1 > first_seq ? since + 1 : first_seq;

    for (; s < next_seq; s++)
        if (!fn(&ring[(s - 1) % size], arg))
            return;
}

uint64_t journal_last(void)
{
    return next_seq - 1;
}

uint64_t journal_dropped(void)
{
    return dropped;
}

uint64_t journal_written(void)
{
    return written;
}

void journal_clear(void)
{
    first_seq = next_seq; /* numbers go on: a reader's since stays valid */
}

void journal_set_listener(void (*fn)(const struct journal_event *e, void *arg),
                          void *arg)
{
    listener = fn;
    listener_arg = arg;
}

void journal_copy(char *field, size_t cap, const char *s, size_t n)
{
    if (s == NULL)
        s = "";
    if (n == (size_t)-1)
        n = strlen(s);
    if (n >= cap)
        n = cap - 1;
    memcpy(field, s, n);
    field[n] = '\0';
}

static const char *const dir_names[] = { NULL, "up", "down" };

size_t journal_json(const struct journal_event *e, char *out, size_t cap)
{
    size_t at = 0;
    int n;

#define PUT(...)                                                              \
    do {                                                                      \
        n = snprintf(out + at, cap - at, __VA_ARGS__);                        \
        if (n < 0 || (size_t)n >= cap - at)                                   \
            return 0;                                                         \
        at += (size_t)n;                                                      \
    } while (0)
#define STR(key, value)                                                       \
    do {                                                                      \
        PUT(",\"%s\":", key);                                                 \
        jsonesc(out, cap, &at, value, strlen(value));                         \
        if (cap - at < 2)                                                     \
            return 0;                                                         \
    } while (0)

    if (cap < 1024)
        return 0;
    PUT("{\"seq\":%" PRIu64 ",\"time_ns\":%" PRId64 ",\"mono_ns\":%" PRId64
        ",\"kind\":\"%s\"",
        e->seq, e->wall_ns, e->mono_ns, journal_kind_name(e->kind));
    STR("proxy", e->proxy);
    PUT(",\"conn\":%" PRIu64, e->conn);
    if (e->client[0] != '\0')
        STR("client", e->client);
    if (e->index > 0)
        PUT(",\"index\":%" PRIu64, e->index);
    if (e->dir != JOURNAL_NONE && e->dir <= JOURNAL_DOWN)
        PUT(",\"direction\":\"%s\"", dir_names[e->dir]);
    if (e->request[0] != '\0')
        STR("request", e->request);
    if (e->behavior[0] != '\0')
        STR("behavior", e->behavior);
    if (e->toxic[0] != '\0')
        STR("toxic", e->toxic);
    /* options are a JSON object the writer made, or none */
    if (e->options[0] == '{')
        PUT(",\"options\":%s", e->options);
    if (e->outcome[0] != '\0')
        STR("outcome", e->outcome);
    if (e->code != 0)
        PUT(",\"code\":%" PRId32, e->code);
    if (e->held_ms > 0)
        PUT(",\"held_ms\":%.3f", e->held_ms);
    if (e->bytes > 0)
        PUT(",\"bytes\":%" PRIu64, e->bytes);
    PUT("}");
#undef STR
#undef PUT
    return at;
}
