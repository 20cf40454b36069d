/* Fuzzes reading a journal to replay (ctl/replay.c, behav/replay.c):
 * --replay FILE and POST /replay bodies. Whatever the bytes, the journal
 * is refused with a message or becomes a replay that can be looked up. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "behav/replay.h"
#include "ctl/replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[600];
    struct replay *r = ctl_replay_parse((const char *)data, size, err, sizeof(err));

    if (r == NULL) {
        if (err[0] == '\0')
            abort(); /* a refusal always says why */
        return 0;
    }
    replay_set(r);
    for (uint64_t c = 0; c < 3; c++)
        for (uint64_t i = 0; i < 3; i++) {
            double held;
            replay_lookup("r", c, i, &held);
        }
    replay_set(NULL);
    return 0;
}
