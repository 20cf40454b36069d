/* Fuzzes the behavior-mix string (--behavior, PUT /behavior). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "behav/mix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *spec = malloc(size + 1), err[512], back[1024];
    struct mix m;
    struct rng r;

    memcpy(spec, data, size);
    spec[size] = '\0';
    if (mix_parse(spec, &m, err, sizeof(err)) == 0) {
        rng_seed(&r, size);
        for (int i = 0; i < 16; i++)
            if (mix_draw(&m, &r) < 0)
                abort();
        mix_format(&m, back, sizeof(back));
    }
    free(spec);
    return 0;
}
