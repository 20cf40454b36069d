/*
 * scripts: custom behaviors and protocols given as JSON — POST /behaviors
 * and the "behaviors" / "protocols" lists of `vaurien server -config`.
 *
 *   {"name": N, "script": "return {...}"}   the Lua source itself
 *   {"name": N, "file": "x.lua"}            -config only: a file, relative
 *                                           to the config's folder
 */
#ifndef VAURIEN_SCRIPTS_H
#define VAURIEN_SCRIPTS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Loads one entry as a behavior (or a protocol). dir: the folder "file"
 * is relative to; NULL refuses "file" (the API reads no files). Returns
 * 0, or a negative errno with a one-line message in err. */
int ctl_script_load(json_t *e, bool behavior, const char *dir, char *err,
                    size_t errlen);

/* Loads the "behaviors" and "protocols" lists of a config object (absent:
 * nothing to do). With keep_going, an entry that fails is logged and the
 * rest still load (SIGHUP: the old script stays); without, the first
 * failure is returned. Returns 0 or a negative errno with err. */
int ctl_scripts_load(json_t *config, const char *dir, bool keep_going,
                     char *err, size_t errlen);

#endif
