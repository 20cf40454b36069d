/*
 * h2c: the HTTP/1.1 Upgrade: h2c request (see h2c.h). The head is read by
 * the http framer's parts(); here only its tokens and the base64url of
 * HTTP2-Settings are read.
 */
#include "proto/h2c.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

static bool name_is(const struct proto_str *s, const char *name)
{
    return s->n == strlen(name) && strncasecmp(s->p, name, s->n) == 0;
}

/* Whether v holds tok (case-insensitive) as one of its comma-separated
 * items. */
static bool has_token(const struct proto_str *v, const char *tok)
{
    size_t len = strlen(tok), i = 0;

    while (i < v->n) {
        size_t j = i, e;
        while (j < v->n && v->p[j] != ',')
            j++;
        e = j;
        while (i < e && (v->p[i] == ' ' || v->p[i] == '\t'))
            i++;
        while (e > i && (v->p[e - 1] == ' ' || v->p[e - 1] == '\t'))
            e--;
        if (e - i == len && strncasecmp(v->p + i, tok, len) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

/* Decodes base64url without padding (HTTP2-Settings) into out. Returns
 * the bytes, or -1 when v is not base64url or does not fit. */
static ssize_t settings_decode(const struct proto_str *v, unsigned char *out,
                               size_t cap)
{
    char in[4 * (H2C_SETTINGS_MAX / 3) + 4];
    size_t n = 0, pad = 0;
    int len;

    if (v->n % 4 == 1 || v->n + 3 >= sizeof(in) || (v->n + 3) / 4 * 3 > cap)
        return -1;
    for (size_t i = 0; i < v->n; i++) {
        char ch = v->p[i];
        if (ch == '-')
            ch = '+';
        else if (ch == '_')
            ch = '/';
        else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= '0' && ch <= '9')))
            return -1;
        in[n++] = ch;
    }
    while (n % 4 != 0) {
        in[n++] = '=';
        pad++;
    }
    if (n == 0)
        return 0;
    len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0 || (size_t)len < pad)
        return -1;
    return (ssize_t)((size_t)len - pad); /* it counts the padding's bytes */
}

bool h2c_connection_header(const struct proto_str *name)
{
    static const char *const names[] = { "connection", "upgrade",
        "http2-settings", "host", "keep-alive", "proxy-connection",
        "transfer-encoding", "te" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (name_is(name, names[i]))
            return true;
    return false;
}

ssize_t h2c_upgrade_read(const unsigned char *p, size_t n,
                         struct h2c_upgrade *u)
{
    const unsigned char *end = n >= 4 ? memmem(p, n, "\r\n\r\n", 4) : NULL;
    struct proto_unit unit = { .flags = PROTO_HEAD };
    const struct proto_str *settings = NULL;
    bool upgrade = false;
    size_t head;
    ssize_t len;

    memset(u, 0, sizeof(*u));
    if (end == NULL)
        return n > H2C_HEAD_MAX ? -EMSGSIZE : 0;
    head = (size_t)(end - p) + 4;
    if (head > H2C_HEAD_MAX)
        return -EMSGSIZE;
    proto_http.parts(p, head, &unit, &u->parts);
    for (unsigned i = 0; i < u->parts.nheaders; i++) {
        const struct proto_str *h = u->parts.headers[i];
        if (name_is(&h[0], "upgrade") && has_token(&h[1], "h2c"))
            upgrade = true;
        else if (name_is(&h[0], "http2-settings"))
            settings = &h[1];
        else if (name_is(&h[0], "host"))
            u->host = h[1];
        else if ((name_is(&h[0], "content-length") &&
                  !(h[1].n == 1 && h[1].p[0] == '0')) ||
                 name_is(&h[0], "transfer-encoding"))
            return -ENOTSUP;
    }
    if (!upgrade || u->parts.method.n == 0 || u->parts.path.n == 0)
        return -EPROTO;
    if (settings == NULL)
        return -EBADMSG;
    len = settings_decode(settings, u->settings, sizeof(u->settings));
    if (len < 0)
        return -EBADMSG;
    u->settings_len = (size_t)len;
    u->head = name_is(&u->parts.method, "HEAD");
    return (ssize_t)head;
}
