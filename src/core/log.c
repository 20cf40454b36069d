/*
 * log: formatted lines to stderr or a file (see log.h).
 */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/jsonesc.h"

static const char *const level_names[] = {
    "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL",
};

static FILE *log_out;
static enum log_level log_min = LOG_INFO;
static char log_path[4096]; /* "" for stderr */
static int log_json;

void log_set_json(int on)
{
    log_json = on;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i <= LOG_CRITICAL; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warn") == 0)
        return LOG_WARNING;
    return -1;
}

int log_init(const char *output, enum log_level level)
{
    FILE *f = stderr;

    if (output != NULL && output[0] != '\0' && !(output[0] == '-' && output[1] == '\0')) {
        f = fopen(output, "a");
        if (f == NULL)
            return -errno;
        setvbuf(f, NULL, _IOLBF, 0);
    }
    log_deinit();
    log_out = f;
    log_min = level;
    snprintf(log_path, sizeof(log_path), "%s", f == stderr ? "" : output);
    return 0;
}

int log_reopen(void)
{
    FILE *f;

    if (log_path[0] == '\0')
        return 0;
    f = fopen(log_path, "a");
    if (f == NULL)
        return -errno;
    setvbuf(f, NULL, _IOLBF, 0);
    if (log_out != NULL && log_out != stderr)
        fclose(log_out);
    log_out = f;
    return 0;
}

void log_libevent(int severity, const char *msg)
{
    enum log_level l = severity == EVENT_LOG_DEBUG  ? LOG_DEBUG
                       : severity == EVENT_LOG_MSG  ? LOG_INFO
                       : severity == EVENT_LOG_WARN ? LOG_WARNING
                                                    : LOG_ERROR;

    log_write(l, "libevent: %s", msg);
}

void log_deinit(void)
{
    if (log_out != NULL && log_out != stderr)
        fclose(log_out);
    log_out = NULL;
}

int log_enabled(enum log_level level)
{
    return level >= log_min;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    FILE *f = log_out != NULL ? log_out : stderr;
    char stamp[32];
    time_t now;
    struct tm tm;
    char line[8192];
    va_list ap;
    int n;

    if (level < log_min)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1; /* cut, never split into lines */
    if (log_json) {
        struct timespec ts;
        static char out[sizeof(line) * 6 + 256];
        size_t at;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = ts.tv_sec;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        at = (size_t)snprintf(out, sizeof(out),
                              "{\"time\":\"%s.%03ldZ\",\"time_ns\":%lld,"
                              "\"pid\":%d,\"level\":\"%s\",\"msg\":",
                              stamp, ts.tv_nsec / 1000000,
                              (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
                              (int)getpid(), level_names[level]);
        jsonesc(out, sizeof(out) - 2, &at, line, (size_t)n);
        out[at++] = '}';
        out[at++] = '\n';
        fwrite(out, 1, at, f);
        return;
    }
    now = time(NULL);
    localtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(f, "%s [%d] [%s] ", stamp, (int)getpid(), level_names[level]);
    /* One event, one line: control bytes in names and paths that users
     * chose (a proxy named "x\n... [ERROR] ...") are escaped, not written. */
    for (int i = 0, run = 0; i <= n; i++) {
        unsigned char c = (unsigned char)line[i];
        if (i < n && c >= 0x20 && c != 0x7f && c != '\\')
            continue;
        fwrite(line + run, 1, (size_t)(i - run), f);
        run = i + 1;
        if (i < n)
            fprintf(f, c == '\\' ? "\\\\" : "\\x%02x", c);
    }
    fputc('\n', f);
}
