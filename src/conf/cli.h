/*
 * cli: the command line of `vaurien` (the original's flags, kept
 * compatible, plus --seed), turned into settings.
 */
#ifndef VAURIEN_CLI_H
#define VAURIEN_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "conf/settings.h"

enum cli_result {
    CLI_RUN,   /* settings are ready: run */
    CLI_EXIT,  /* help, version or a list was printed: exit 0 */
    CLI_ERROR, /* err holds a one-line message: exit 2 */
};

/* Parses argv[first..argc) into st: defaults, then the --config file, then
 * the flags, so flags given explicitly win over the file. */
enum cli_result cli_parse(int argc, char **argv, int first,
                          struct settings *st, char *err, size_t errlen);

void cli_print_help(FILE *out);
void cli_print_behaviors(FILE *out);
void cli_print_protocols(FILE *out);

#endif
