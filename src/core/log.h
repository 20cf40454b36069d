/*
 * log: one line per event, in the original Vaurien's format
 *   2026-11-28 01:02:03 [1234] [INFO] message
 * written to stderr or to a file. Every module logs through here.
 */
#ifndef VAURIEN_LOG_H
#define VAURIEN_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_CRITICAL };

/* Parses "debug", "info", "warning", "error" or "critical" (any case).
 * Returns the level, or -1 if the name is unknown. */
int log_level_parse(const char *name);

/* Opens the output ("-" = stderr) and sets the level. Returns 0 or -errno. */
int log_init(const char *output, enum log_level level);
void log_deinit(void);
/* Opens the output again (after logrotate moved it: SIGHUP). Returns 0,
 * or -errno with the old output kept. */
int log_reopen(void);

/* libevent's messages, through here (event_set_log_callback). */
void log_libevent(int severity, const char *msg);

/* One JSON object per line from now on ({"time", "time_ns", "pid",
 * "level", "msg"}: the journal's names where they apply). */
void log_set_json(int on);

int log_enabled(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) \
    do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
