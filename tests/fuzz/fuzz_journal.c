/* Fuzzes what the journal writes (core/journal.c, core/jsonesc.c): an
 * event whose strings come from the input (any bytes: client names,
 * requests, proxy names) must come out as one JSON object that jansson
 * reads back, with the strings it was given when they were UTF-8 and fit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/journal.h"
#include "core/jsonesc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t take(const uint8_t **data, size_t *size, char *field, size_t cap)
{
    size_t n = *size > 0 ? (*data)[0] % cap : 0;

    if (*size > 0) {
        (*data)++;
        (*size)--;
    }
    if (n > *size)
        n = *size;
    journal_copy(field, cap, (const char *)*data, n);
    *data += n;
    *size -= n;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct journal_event e;
    char out[4096], lit[600];
    size_t at = 0, n;
    json_t *j;

    /* a string literal on its own */
    n = size < 200 ? size : 200;
    jsonesc(lit, sizeof(lit), &at, (const char *)data, n);
    j = json_loadb(lit, at, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (j == NULL || !json_is_string(j))
        abort();
    json_decref(j);

    /* an event */
    memset(&e, 0, sizeof(e));
    e.seq = size;
    e.kind = (uint8_t)(size % JOURNAL_KIND_N);
    e.dir = (uint8_t)(size % 3);
    e.index = size * 7;
    e.held_ms = (double)size / 3.0;
    take(&data, &size, e.proxy, sizeof(e.proxy));
    take(&data, &size, e.client, sizeof(e.client));
    take(&data, &size, e.behavior, sizeof(e.behavior));
    take(&data, &size, e.toxic, sizeof(e.toxic));
    take(&data, &size, e.request, sizeof(e.request));
    take(&data, &size, e.outcome, sizeof(e.outcome));
    n = journal_json(&e, out, sizeof(out));
    if (n == 0)
        abort(); /* 4096 always holds an event */
    j = json_loadb(out, n, 0, NULL);
    if (j == NULL || !json_is_object(j) ||
        json_integer_value(json_object_get(j, "seq")) != (json_int_t)e.seq)
        abort();
    json_decref(j);
    return 0;
}
