/* Fuzzes the command line's value parsing: the input is split into
 * arguments at NUL and newline bytes. --config is left out (it would read
 * files), as are the flags that print and exit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/cli.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *argv[64], err[2048];
    int argc = 0;
    struct settings st;

    memcpy(buf, data, size);
    buf[size] = '\0';
    argv[argc++] = (char *)"vaurien";
    for (char *p = buf; p < buf + size && argc < 63;) {
        char *end = p + strcspn(p, "\n");
        *end = '\0';
        if (strncmp(p, "--config", 8) == 0 || strncmp(p, "--help", 6) == 0 ||
            strcmp(p, "-h") == 0 || strncmp(p, "--version", 9) == 0 ||
            strncmp(p, "--list", 6) == 0) {
            p = end + 1;
            continue;
        }
        argv[argc++] = p;
        p = end + 1;
    }
    argv[argc] = NULL;
    settings_init(&st);
    cli_parse(argc, argv, 1, &st, err, sizeof(err));
    settings_deinit(&st);
    free(buf);
    return 0;
}
