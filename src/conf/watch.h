/*
 * watch: `vaurien server -config FILE -watch`. Tells the loop when the
 * configuration's files changed, so that it reloads them as SIGHUP does.
 *
 *   inotify (the folders) --events--> settle timer --digest changed?--> cb
 *
 * Kubernetes mounts a ConfigMap as a folder where config.json is a symlink
 * to ..data/config.json and ..data a symlink to a timestamped folder, which
 * it swaps by renaming a new symlink over ..data: the file itself is never
 * written. So the watch is on the folders (the one each file is named in,
 * and the one its symlinks resolve to), and what decides is the files'
 * bytes: after a burst of events has settled, the digest of every watched
 * file is computed again, and the callback runs only when it differs from
 * the last one seen. An editor's temporary files, or a swap that changes
 * nothing, reload nothing.
 */
#ifndef VAURIEN_CONF_WATCH_H
#define VAURIEN_CONF_WATCH_H

#include <stddef.h>

#include <event2/event.h>

#define WATCH_SETTLE_MS 100   /* quiet time after the last event */
#define WATCH_MAX_WAIT_MS 500 /* a stream of events waits no longer */
#define WATCH_FILES_MAX 64    /* the config and the scripts it names */

struct watch;

typedef void (*watch_cb)(void *arg);

/* Starts watching path (and, later, the files watch_set_files gives) on
 * base; cb(arg) runs on the loop when their bytes changed. The digest of
 * the files as they are now is the starting point. Returns the watch, or
 * NULL with a one-line message in err (no inotify on this system, a
 * folder that cannot be watched). */
struct watch *watch_create(struct event_base *base, const char *path,
                           watch_cb cb, void *arg, char *err, size_t errlen);
void watch_destroy(struct watch *w);

/* Replaces the files watched (the first stays the config). The digest is
 * taken again, so a change the caller has just applied is not reported.
 * Files past WATCH_FILES_MAX are not watched (logged). */
void watch_set_files(struct watch *w, const char *const *paths, size_t n);

/* The 64-bit FNV-1a digest of the files' bytes, a missing file counting
 * as different from an empty one. Exposed for the unit tests. */
unsigned long long watch_digest(const char *const *paths, size_t n);

#endif
