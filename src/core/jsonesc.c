/*
 * jsonesc: JSON string literals without allocation (see jsonesc.h).
 */
#include "core/jsonesc.h"

#include <stdio.h>
#include <string.h>

/* The length of a valid UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;

    if (s[0] < 0xc2 || s[0] > 0xf4)
        return 0;
    len = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
    if (len > n)
        return 0;
    cp = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

void jsonesc(char *out, size_t cap, size_t *at, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = *at, i = 0;

    if (cap < o + 3)
        return;
    out[o++] = '"';
    while (i < n) {
        char tmp[8];
        size_t w = 0, take = 1;
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            w = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            tmp[0] = '\\';
            tmp[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            w = 2;
        } else if (c < 0x20 || c == 0x7f) {
            w = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        } else if (c < 0x80) {
            tmp[0] = (char)c;
            w = 1;
        } else if ((take = utf8_len(u + i, n - i)) > 0) {
            memcpy(tmp, u + i, take);
            w = take;
        } else {
            take = 1;
            w = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        }
        if (o + w + 2 > cap)
            break; /* room for the quote and the NUL */
        memcpy(out + o, tmp, w);
        o += w;
        i += take;
    }
    out[o++] = '"';
    out[o] = '\0';
    *at = o;
}
