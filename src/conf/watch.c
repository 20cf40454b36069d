/*
 * watch: the configuration's files, watched through their folders (see
 * watch.h).
 *
 * For each file the path is followed component by component, as the kernel
 * does, and every name met on the way that is a symlink, and the file's own
 * name, is noted with its folder: for a ConfigMap mounted at /etc/vaurien,
 *
 *   /etc/vaurien          config.json (-> ..data/config.json), ..data
 *   /etc/vaurien/..2026_12_01_10_00_00.123/   config.json
 *
 * Those folders get an inotify watch; an event about one of those names
 * (or about a folder itself: deleted, moved) starts the settle timer. When
 * it fires, the chain is followed again (the swap moved it), the watches
 * follow, and the digest decides whether cb runs. Other names in the same
 * folders (a log file, an editor's backup) wake nothing.
 */
#include "conf/watch.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/inotify.h>
#endif

#include "core/log.h"

#define WATCH_NAMES_MAX 256 /* (folder, name) pairs over every chain */
#define WATCH_HOPS_MAX 40   /* symlinks followed per file, as the kernel */
#define WATCH_RETRY_MS 1000 /* a folder that went away: look again */
#define WATCH_READ_MAX (64u << 20) /* bytes of a file that count */

struct watch_name {
    int wd; /* the folder's watch */
    char name[NAME_MAX + 1];
};

struct watch {
    struct event_base *base;
    int fd;                       /* inotify */
    struct event *readable;       /* on fd */
    struct event *settle;         /* WATCH_SETTLE_MS after the last event */
    bool pending;                 /* an event came, settle armed */
    struct timespec first;        /* when the first pending event came */
    char *files[WATCH_FILES_MAX]; /* absolute paths, owned */
    size_t nfiles;
    struct watch_name names[WATCH_NAMES_MAX];
    size_t nnames;
    bool lost;                 /* a folder could not be watched */
    unsigned long long digest; /* of the files' bytes, last seen */
    watch_cb cb;
    void *arg;
};

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static unsigned long long fnv(unsigned long long h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

unsigned long long watch_digest(const char *const *paths, size_t n)
{
    unsigned long long h = FNV_OFFSET;
    char buf[16384];

    for (size_t i = 0; i < n; i++) {
        FILE *f = fopen(paths[i], "rb");
        size_t got, total = 0;
        unsigned char mark = f != NULL ? 1 : 0;
        h = fnv(h, &mark, 1);
        if (f == NULL)
            continue;
        while (total < WATCH_READ_MAX &&
               (got = fread(buf, 1, sizeof(buf), f)) > 0) {
            h = fnv(h, buf, got);
            total += got;
        }
        fclose(f);
        h = fnv(h, "\0\0", 2); /* "ab" + "c" differs from "a" + "bc" */
    }
    return h;
}

#ifdef __linux__

#define WATCH_MASK                                                             \
    (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_MODIFY |    \
     IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

static long ms_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 +
           (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Notes (folder, name) and watches the folder. Returns 0, or -1 when the
 * folder cannot be watched (gone, not a folder, out of watches). */
static int note(struct watch *w, const char *dir, const char *name)
{
    int wd = inotify_add_watch(w->fd, dir[0] != '\0' ? dir : "/", WATCH_MASK);

    if (wd < 0)
        return -1;
    if (w->nnames == WATCH_NAMES_MAX)
        return 0;
    w->names[w->nnames].wd = wd;
    snprintf(w->names[w->nnames].name, sizeof(w->names[0].name), "%s", name);
    w->nnames++;
    return 0;
}

/* Follows path one component at a time, noting the final name and every
 * symlink met (see the top of this file). Returns 0, or -1 when a folder
 * on the way cannot be watched. */
static int follow(struct watch *w, const char *path)
{
    char done[PATH_MAX] = "", rest[PATH_MAX], next[PATH_MAX];
    char target[PATH_MAX], name[NAME_MAX + 1];
    int hops = 0;

    snprintf(rest, sizeof(rest), "%s", path);
    for (;;) {
        char *p = rest, *slash;
        struct stat sb;
        ssize_t len;
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        slash = strchr(p, '/');
        snprintf(name, sizeof(name), "%.*s",
                 (int)(slash != NULL ? slash - p : (long)strlen(p)), p);
        memmove(rest, slash != NULL ? slash : "",
                strlen(slash != NULL ? slash : "") + 1);
        if (strcmp(name, ".") == 0)
            continue;
        if (strcmp(name, "..") == 0) {
            char *last = strrchr(done, '/');
            if (last != NULL)
                *last = '\0';
            continue;
        }
        if ((size_t)snprintf(next, sizeof(next), "%s/%s", done, name) >=
            sizeof(next))
            return -1;
        if (lstat(next, &sb) == 0 && S_ISLNK(sb.st_mode) &&
            hops++ < WATCH_HOPS_MAX &&
            (len = readlink(next, target, sizeof(target) - 1)) > 0) {
            target[len] = '\0';
            if (note(w, done, name) < 0)
                return -1;
            if (target[0] == '/')
                done[0] = '\0';
            /* the link's target, then what was left after it */
            if ((size_t)snprintf(next, sizeof(next), "%s%s", target, rest) >=
                sizeof(next))
                return -1;
            snprintf(rest, sizeof(rest), "%s", next);
            continue;
        }
        if (rest[0] == '\0') /* the file itself, whether it exists or not */
            return note(w, done, name);
        snprintf(done, sizeof(done), "%s", next);
    }
    return 0;
}

/* Follows every file's chain again: watches the folders it goes through
 * now and drops the watches of folders it no longer does. Logs when a
 * folder is lost or found again, unless quiet. */
static void rewatch(struct watch *w, bool quiet)
{
    struct watch_name old[WATCH_NAMES_MAX];
    size_t nold = w->nnames;
    bool lost = false;
    int why = 0;

    memcpy(old, w->names, nold * sizeof(*old));
    w->nnames = 0;
    for (size_t i = 0; i < w->nfiles; i++)
        if (follow(w, w->files[i]) < 0) {
            lost = true;
            why = errno;
        }
    for (size_t i = 0; i < nold; i++) {
        bool kept = false;
        for (size_t k = 0; k < w->nnames && !kept; k++)
            kept = w->names[k].wd == old[i].wd;
        for (size_t k = 0; k < i && !kept; k++)
            kept = old[k].wd == old[i].wd; /* removed once already */
        if (!kept)
            inotify_rm_watch(w->fd, old[i].wd); /* gone already: EINVAL */
    }
    if (quiet)
        ;
    else if (lost && !w->lost)
        log_warn("-watch: %s: a folder on its path cannot be watched (%s); "
                 "looking again every %d ms",
                 w->files[0], strerror(why), WATCH_RETRY_MS);
    else if (!lost && w->lost)
        log_info("-watch: %s: watched again", w->files[0]);
    w->lost = lost;
    errno = why;
}

static void arm(struct watch *w, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(w->settle, &tv);
}

static void on_settled(evutil_socket_t fd, short what, void *arg)
{
    struct watch *w = arg;
    unsigned long long d;

    (void)fd;
    (void)what;
    w->pending = false;
    rewatch(w, false);
    d = watch_digest((const char *const *)w->files, w->nfiles);
    if (w->lost)
        arm(w, WATCH_RETRY_MS);
    if (d == w->digest)
        return;
    w->digest = d;
    w->cb(w->arg); /* may call watch_set_files */
}

/* Whether an event is about a name of a chain, or about a watched folder
 * itself. */
static bool relevant(const struct watch *w, const struct inotify_event *e)
{
    if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW))
        return true;
    for (size_t i = 0; i < w->nnames; i++)
        if (w->names[i].wd == e->wd && e->len > 0 &&
            strcmp(w->names[i].name, e->name) == 0)
            return true;
    return false;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct watch *w = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    ssize_t n;

    (void)what;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            hit |= relevant(w, e);
            p += sizeof(*e) + e->len;
        }
    }
    if (!hit)
        return;
    /* settle: WATCH_SETTLE_MS after the last event, but a stream of them
     * waits no longer than WATCH_MAX_WAIT_MS after the first */
    if (!w->pending) {
        w->pending = true;
        clock_gettime(CLOCK_MONOTONIC, &w->first);
        arm(w, WATCH_SETTLE_MS);
    } else {
        long left = WATCH_MAX_WAIT_MS - ms_since(&w->first);
        arm(w, left < 0 ? 0 : left < WATCH_SETTLE_MS ? left : WATCH_SETTLE_MS);
    }
}

static void files_free(struct watch *w)
{
    for (size_t i = 0; i < w->nfiles; i++)
        free(w->files[i]);
    w->nfiles = 0;
}

/* An absolute copy of path (the process does not change folders, but the
 * chain is followed from /). NULL when out of memory. */
static char *absolute(const char *path)
{
    char cwd[PATH_MAX], *out;

    if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
        return strdup(path);
    out = malloc(strlen(cwd) + strlen(path) + 2);
    if (out != NULL)
        sprintf(out, "%s/%s", cwd, path);
    return out;
}

void watch_set_files(struct watch *w, const char *const *paths, size_t n)
{
    char *config = w->files[0];

    w->files[0] = NULL;
    files_free(w);
    w->files[w->nfiles++] = config;
    for (size_t i = 0; i < n && w->nfiles < WATCH_FILES_MAX; i++) {
        char *a = absolute(paths[i]);
        if (a != NULL)
            w->files[w->nfiles++] = a;
    }
    if (n + 1 > WATCH_FILES_MAX)
        log_warn("-watch: %s names %zu files; the first %d are watched", config,
                 n, WATCH_FILES_MAX - 1);
    rewatch(w, false);
    w->digest = watch_digest((const char *const *)w->files, w->nfiles);
}

struct watch *watch_create(struct event_base *base, const char *path,
                           watch_cb cb, void *arg, char *err, size_t errlen)
{
    struct watch *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        snprintf(err, errlen, "-watch: out of memory");
        return NULL;
    }
    w->base = base;
    w->cb = cb;
    w->arg = arg;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        snprintf(err, errlen, "-watch: inotify: %s", strerror(errno));
        goto fail;
    }
    w->files[0] = absolute(path);
    w->readable = event_new(base, w->fd, EV_READ | EV_PERSIST, on_readable, w);
    w->settle = evtimer_new(base, on_settled, w);
    if (w->files[0] == NULL || w->readable == NULL || w->settle == NULL) {
        snprintf(err, errlen, "-watch: out of memory");
        goto fail;
    }
    w->nfiles = 1;
    rewatch(w, true);
    if (w->lost) {
        snprintf(err, errlen, "-watch: cannot watch the folder of %s: %s", path,
                 strerror(errno));
        goto fail;
    }
    w->digest = watch_digest((const char *const *)w->files, w->nfiles);
    event_add(w->readable, NULL);
    return w;
fail:
    watch_destroy(w);
    return NULL;
}

void watch_destroy(struct watch *w)
{
    if (w == NULL)
        return;
    if (w->readable != NULL)
        event_free(w->readable);
    if (w->settle != NULL)
        event_free(w->settle);
    if (w->fd >= 0)
        close(w->fd);
    files_free(w);
    free(w);
}

#else /* no inotify: -watch is refused where it is asked */

struct watch *watch_create(struct event_base *base, const char *path,
                           watch_cb cb, void *arg, char *err, size_t errlen)
{
    (void)base;
    (void)path;
    (void)cb;
    (void)arg;
    snprintf(err, errlen,
             "-watch: needs inotify (Linux); send SIGHUP to "
             "reload instead");
    return NULL;
}

void watch_destroy(struct watch *w)
{
    (void)w;
}

void watch_set_files(struct watch *w, const char *const *paths, size_t n)
{
    (void)w;
    (void)paths;
    (void)n;
}

#endif
