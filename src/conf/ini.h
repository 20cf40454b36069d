/*
 * ini: the original Vaurien's INI file, applied to settings.
 *
 *   [vaurien]          proxy, backend, protocol, behavior, timeout, ...
 *   [behavior:NAME]    options of behavior NAME (applied, unlike the original)
 *   [protocol:NAME]    options of protocol NAME
 *
 * Values may name environment variables as ${NAME}.
 */
#ifndef VAURIEN_INI_H
#define VAURIEN_INI_H

#include <stddef.h>

#include "conf/settings.h"

/* Applies the file at path to st. Returns 0, or a negative errno with a
 * one-line message (naming the line) in err. */
int ini_load_file(const char *path, struct settings *st, char *err,
                  size_t errlen);

/* Same, for the text of a file (tests and fuzzing). */
int ini_load_string(const char *text, struct settings *st, char *err,
                    size_t errlen);

/* Expands ${NAME} in value into out. Returns 0, or -EINVAL with a message. */
int ini_expand_env(const char *value, char *out, size_t outlen, char *err,
                   size_t errlen);

#endif
