/* Fuzzes the INI configuration (--config). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/ini.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), err[1024];
    struct settings st;

    log_init("/dev/null", LOG_CRITICAL);
    memcpy(text, data, size);
    text[size] = '\0';
    settings_init(&st);
    ini_load_string(text, &st, err, sizeof(err));
    settings_deinit(&st);
    free(text);
    return 0;
}
