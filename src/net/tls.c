/*
 * tls: the relays and their OpenSSL contexts (see tls.h).
 */
#include "net/tls.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "behav/behav.h"
#include "conf/settings.h"
#include "core/log.h"

/* ---- certificates made at start-up -------------------------------------- */

/* A name as a subject: CN=cn. */
static X509_NAME *make_name(const char *cn)
{
    X509_NAME *n = X509_NAME_new();

    if (n != NULL)
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
                                   (const unsigned char *)cn, -1, -1, 0);
    return n;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return 0;
}

/* A certificate for key, named cn, valid from `from` to `until` seconds
 * from now, signed by issuer_key (itself when issuer is NULL). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
                       EVP_PKEY *issuer_key, const char *san, bool ca,
                       long from, long until)
{
    X509 *c = X509_new();
    X509_NAME *name = make_name(cn);
    static long serial = 1;

    if (c == NULL || name == NULL)
        goto fail;
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), (long)time(NULL) * 100 + serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), from);
    X509_gmtime_adj(X509_getm_notAfter(c), until);
    X509_set_pubkey(c, key);
    X509_set_subject_name(c, name);
    X509_set_issuer_name(c, issuer != NULL ? X509_get_subject_name(issuer)
                                           : name);
    if (add_ext(c, issuer != NULL ? issuer : c, NID_basic_constraints,
                ca ? "critical,CA:TRUE" : "CA:FALSE") < 0 ||
        add_ext(c, issuer != NULL ? issuer : c, NID_key_usage,
                ca ? "critical,keyCertSign,cRLSign"
                   : "critical,digitalSignature,keyEncipherment") < 0 ||
        (san != NULL &&
         add_ext(c, issuer != NULL ? issuer : c, NID_subject_alt_name, san) < 0) ||
        X509_sign(c, issuer_key, EVP_sha256()) == 0)
        goto fail;
    X509_NAME_free(name);
    return c;
fail:
    X509_NAME_free(name);
    X509_free(c);
    return NULL;
}

/* subjectAltName for a listen host: itself (an IP or a name), and the
 * loopback names a test connects with. */
static void san_for(const char *host, char *out, size_t len)
{
    unsigned char buf[16];
    bool ip = inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;

    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        snprintf(out, len, "DNS:localhost,IP:127.0.0.1,IP:::1");
    else if (ip)
        snprintf(out, len, "IP:%s,DNS:localhost,IP:127.0.0.1,IP:::1", host);
    else
        snprintf(out, len, "DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1", host);
}

/* The CA of the process, made once: every proxy's certificate made at
 * start is signed by it, so one --tls-ca-out file trusts them all. */
static EVP_PKEY *ca_key;
static X509 *ca;

static int make_ca(void)
{
    if (ca != NULL)
        return 0;
    ca_key = EVP_EC_gen("P-256");
    ca = ca_key != NULL ? make_cert(ca_key, "Vaurien test CA", NULL, ca_key,
                                    NULL, true, -3600, 10L * 365 * 86400)
                        : NULL;
    return ca != NULL ? 0 : -ENOMEM;
}

/* Makes a certificate for host signed by the process's CA; writes the CA
 * to ca_out ("" for nowhere); puts the certificate and key in ctx. */
static int make_server_cert(SSL_CTX *ctx, const char *host, const char *ca_out,
                            char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *leaf = NULL;
    char san[600];
    int rc = -ENOMEM;

    if (key == NULL || make_ca() < 0)
        goto out;
    san_for(host, san, sizeof(san));
    leaf = ca != NULL ? make_cert(key, host[0] ? host : "localhost", ca,
                                  ca_key, san, false, -3600, 825L * 86400)
                      : NULL;
    if (leaf == NULL)
        goto out;
    if (SSL_CTX_use_certificate(ctx, leaf) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_add1_chain_cert(ctx, ca) != 1)
        goto out;
    if (ca_out[0] != '\0') {
        /* written aside, then renamed: a client reading it while a new
         * proxy is made never sees it half written */
        char tmp[4200];
        FILE *f;
        bool ok;
        snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", ca_out, (long)getpid());
        f = fopen(tmp, "w");
        ok = f != NULL && PEM_write_X509(f, ca) == 1;
        if (f != NULL && fclose(f) != 0)
            ok = false;
        if (!ok || rename(tmp, ca_out) != 0) {
            snprintf(err, errlen, "--tls-ca-out %s: %s", ca_out,
                     strerror(errno != 0 ? errno : EIO));
            unlink(tmp);
            rc = -EIO;
            goto out_quiet;
        }
    }
    rc = 0;
out:
    if (rc < 0)
        snprintf(err, errlen, "cannot make a TLS certificate: out of memory");
out_quiet:
    X509_free(leaf);
    EVP_PKEY_free(key);
    return rc;
}

/* bad_cert's certificates for host: expired and wrong-name ones signed by
 * the process's CA, a self-signed one with the right name. */
static int make_bad_certs(struct tls_conf *t, const char *host)
{
    char san[600];
    const char *cn = host[0] ? host : "localhost";

    if (make_ca() < 0 || (t->bad_key = EVP_EC_gen("P-256")) == NULL)
        return -ENOMEM;
    san_for(host, san, sizeof(san));
    t->bad[0] = make_cert(t->bad_key, cn, ca, ca_key, san, false,
                          -3 * 86400, -2 * 86400);
    t->bad[1] = make_cert(t->bad_key, "wrong.invalid", ca, ca_key,
                          "DNS:wrong.invalid", false, -3600, 86400);
    t->bad[2] = make_cert(t->bad_key, cn, NULL, t->bad_key, san, false, -3600,
                          86400);
    return t->bad[0] && t->bad[1] && t->bad[2] ? 0 : -ENOMEM;
}

static int hello_cb(SSL *ssl, int *al, void *arg);
static int alpn_select_cb(SSL *ssl, const unsigned char **out,
                          unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg);

/* The first OpenSSL error as text. */
static const char *ssl_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static bool is_ip(const char *host)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int tls_conf_init(struct tls_conf *t, const struct settings *st,
                  const char *listen_host, const char *backend_host,
                  char *err, size_t errlen)
{
    char why[256];

    memset(t, 0, sizeof(*t));
    t->implicit_server = st->proxy_tls;
    t->implicit_client = st->backend_tls;
    if (st->proxy_tls || st->starttls) {
        t->server = SSL_CTX_new(TLS_server_method());
        if (t->server == NULL)
            goto ssl_fail;
        SSL_CTX_set_min_proto_version(t->server, TLS1_2_VERSION);
        /* a peer's FIN without close_notify is an end, and the other
         * direction goes on (OpenSSL 3 makes it fatal by default) */
        SSL_CTX_set_options(t->server, SSL_OP_IGNORE_UNEXPECTED_EOF);
        if (st->tls_cert[0] != '\0') {
            if (SSL_CTX_use_certificate_chain_file(t->server, st->tls_cert) != 1) {
                snprintf(err, errlen, "--tls-cert %s: %s", st->tls_cert,
                         ssl_error(why, sizeof(why)));
                goto fail;
            }
            if (SSL_CTX_use_PrivateKey_file(t->server, st->tls_key[0] ? st->tls_key
                                                                      : st->tls_cert,
                                            SSL_FILETYPE_PEM) != 1 ||
                SSL_CTX_check_private_key(t->server) != 1) {
                snprintf(err, errlen, "--tls-key %s: %s",
                         st->tls_key[0] ? st->tls_key : st->tls_cert,
                         ssl_error(why, sizeof(why)));
                goto fail;
            }
        } else if (make_server_cert(t->server, listen_host, st->tls_ca_out, err,
                                    errlen) < 0) {
            goto fail;
        }
        if (make_bad_certs(t, listen_host) < 0) {
            snprintf(err, errlen, "cannot make a TLS certificate: out of memory");
            goto fail;
        }
        SSL_CTX_set_client_hello_cb(t->server, hello_cb, NULL);
        SSL_CTX_set_alpn_select_cb(t->server, alpn_select_cb, NULL);
    }
    if (st->backend_tls || st->starttls) {
        t->client = SSL_CTX_new(TLS_client_method());
        if (t->client == NULL)
            goto ssl_fail;
        SSL_CTX_set_min_proto_version(t->client, TLS1_2_VERSION);
        SSL_CTX_set_options(t->client, SSL_OP_IGNORE_UNEXPECTED_EOF);
        if (st->backend_tls_insecure) {
            SSL_CTX_set_verify(t->client, SSL_VERIFY_NONE, NULL);
        } else {
            SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
            if (st->backend_ca[0] != '\0'
                    ? SSL_CTX_load_verify_locations(t->client, st->backend_ca, NULL) != 1
                    : SSL_CTX_set_default_verify_paths(t->client) != 1) {
                snprintf(err, errlen, "--backend-ca %s: %s", st->backend_ca,
                         ssl_error(why, sizeof(why)));
                goto fail;
            }
            snprintf(t->verify_host, sizeof(t->verify_host), "%s", backend_host);
        }
        if (st->backend_cert[0] != '\0' &&
            (SSL_CTX_use_certificate_chain_file(t->client, st->backend_cert) != 1 ||
             SSL_CTX_use_PrivateKey_file(t->client, st->backend_key[0]
                                                        ? st->backend_key
                                                        : st->backend_cert,
                                         SSL_FILETYPE_PEM) != 1)) {
            snprintf(err, errlen, "--backend-cert %s: %s", st->backend_cert,
                     ssl_error(why, sizeof(why)));
            goto fail;
        }
        if (!is_ip(backend_host))
            snprintf(t->sni, sizeof(t->sni), "%s", backend_host);
    }
    t->alpn_http1 = strcmp(st->protocol, "http") == 0;
    t->alpn_h2 = strcmp(st->protocol, "http2") == 0 ||
                 strcmp(st->protocol, "grpc") == 0;
    return 0;
ssl_fail:
    snprintf(err, errlen, "TLS: %s", ssl_error(why, sizeof(why)));
fail:
    tls_conf_deinit(t);
    return -EINVAL;
}

static void relay_free(struct relay *r);

void tls_conf_deinit(struct tls_conf *t)
{
    t->closing = true;
    while (!LIST_EMPTY(&t->relays))
        relay_free(LIST_FIRST(&t->relays));
    SSL_CTX_free(t->server);
    SSL_CTX_free(t->client);
    t->server = t->client = NULL;
    for (int i = 0; i < 3; i++) {
        X509_free(t->bad[i]);
        t->bad[i] = NULL;
    }
    EVP_PKEY_free(t->bad_key);
    t->bad_key = NULL;
}

int tls_bad_cert_kind(const char *text)
{
    static const char *const kinds[] = { "expired", "wrong_name", "self_signed" };

    for (int i = 0; i < 3; i++)
        if (strcmp(text, kinds[i]) == 0)
            return i;
    return -1;
}

/* ---- ALPN through both relays of a connection --------------------------- */

#define ALPN_MAX 255 /* bytes of a list passed on (a ClientHello's is
                        rarely over 30) */

struct tls_link {
    int refs;
    struct relay *client;     /* the relays holding it (NULL once gone) */
    struct relay *backend;
    bool offered;             /* the client's hello was read */
    bool backend_gone;        /* its relay went: no pick will come */
    unsigned char offer[ALPN_MAX]; /* the names passed on (wire format) */
    size_t offer_len;
    unsigned char pick[ALPN_MAX];  /* the backend's choice ("" none) */
    size_t pick_len;
};

struct tls_link *tls_link_create(void)
{
    struct tls_link *l = calloc(1, sizeof(*l));

    if (l != NULL)
        l->refs = 1;
    return l;
}

void tls_link_put(struct tls_link *l)
{
    if (l != NULL && --l->refs == 0)
        free(l);
}

size_t tls_alpn_filter(const unsigned char *ext, size_t len, bool http1,
                       unsigned char *out, size_t cap)
{
    size_t at = 2, n = 0, total;

    if (len < 2)
        return 0;
    total = (size_t)ext[0] << 8 | ext[1];
    if (total != len - 2)
        return 0;
    while (at < len) {
        size_t name = ext[at];
        if (name == 0 || at + 1 + name > len)
            return 0;
        if (!http1 || (name == 8 && (memcmp(ext + at + 1, "http/1.1", 8) == 0 ||
                                     memcmp(ext + at + 1, "http/1.0", 8) == 0))) {
            if (n + 1 + name > cap)
                return 0;
            memcpy(out + n, ext + at, 1 + name);
            n += 1 + name;
        }
        at += 1 + name;
    }
    return n;
}

/* ---- relays ------------------------------------------------------------- */

#define RELAY_LINGER_S 10 /* once a side ended, or while a handshake waits:
                             seconds without a byte moved before the relay
                             goes */

/* Where a relay stands. A client's relay (server side) drives its
 * handshake itself, so that it can stop after the ClientHello and read
 * bytes that came before the relay existed; once it is done, libevent
 * takes the session (outer). A backend's relay hands its handshake to
 * libevent at once, after waiting for the client's ALPN offer if linked. */
enum relay_state {
    RELAY_DELAYED,   /* tls_handshake_delay: nothing started yet */
    RELAY_WAITING,   /* for the link's other relay: a backend's for the
                        client's offer, a client's for the backend's pick */
    RELAY_HANDSHAKE, /* a client's handshake, driven here */
    RELAY_OPEN,      /* outer exists */
};

struct relay {
    LIST_ENTRY(relay) link;    /* in its conf's relays */
    enum relay_state state;
    struct tls_conf *conf;
    struct bufferevent *outer; /* TLS, on the TCP connection (open) */
    struct bufferevent *inner; /* plain, on the socketpair */
    bool eof_outer, eof_inner; /* that side's source ended */
    bool shut_outer, shut_inner; /* that side's write end was closed */
    bool up;                   /* the handshake finished */
    bool dirty;                /* no_close_notify: end without it */
    bool hello_read;           /* the ClientHello was stopped at once */
    int alert;                 /* tls_alert: the handshake fails with it */
    struct event *linger_ev;   /* a side ended: goes when nothing moves
                                  for RELAY_LINGER_S seconds */
    struct event wait_ev;      /* the delay, the handshake's socket, or the
                                  wait for the other relay */
    bool wait_assigned;
    struct event_base *base;
    evutil_socket_t fd;        /* the TCP socket until outer has it */
    SSL *ssl;                  /* its SSL until then */
    bool accepting;            /* outer is the server side */
    struct evbuffer *early;    /* TLS bytes read before the relay was */
    struct tls_link *tl;       /* ALPN's link, or NULL */
    char who[128];
};

/* The relay of an SSL, for OpenSSL's callbacks (client relays only). */
static int relay_index = -1;

static void hs_step(struct relay *r);
static void backend_go(struct relay *r);

static void relay_free(struct relay *r)
{
    struct tls_link *l = r->tl;
    struct relay *peer = NULL;

    LIST_REMOVE(r, link);
    if (l != NULL) {
        /* the other relay waits no more for this one */
        if (l->client == r) {
            l->client = NULL;
            peer = l->backend;
        } else if (l->backend == r) {
            l->backend = NULL;
            l->backend_gone = true;
            peer = l->client;
        }
        if (peer != NULL && (peer->state != RELAY_WAITING || r->conf->closing))
            peer = NULL;
    }
    if (r->wait_assigned)
        event_del(&r->wait_ev);
    if (r->linger_ev != NULL)
        event_free(r->linger_ev);
    if (r->outer != NULL)
        bufferevent_free(r->outer);
    if (r->ssl != NULL)
        SSL_free(r->ssl);
    if (r->fd >= 0)
        evutil_closesocket(r->fd);
    if (r->early != NULL)
        evbuffer_free(r->early);
    bufferevent_free(r->inner);
    free(r);
    if (peer != NULL && peer->accepting)
        hs_step(peer); /* on, without the backend's pick */
    else if (peer != NULL)
        backend_go(peer); /* on, without the client's offer */
    tls_link_put(l);
}

static void relay_read(struct bufferevent *bev, void *arg);
static void relay_write(struct bufferevent *bev, void *arg);
static void relay_event(struct bufferevent *bev, short what, void *arg);
static void linger_start(struct relay *r);

/* Puts the TLS side on r->fd, handshaking (a backend's) or with the
 * handshake done (a client's), and starts both sides. Returns 0 or
 * -ENOMEM (r->fd and r->ssl are then still r's, freed with it). */
static int open_outer(struct relay *r)
{
    r->outer = bufferevent_openssl_socket_new(
        r->base, r->fd, r->ssl,
        r->accepting ? BUFFEREVENT_SSL_OPEN : BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE);
    if (r->outer == NULL)
        return -ENOMEM;
    r->state = RELAY_OPEN;
    r->fd = -1;
    r->ssl = NULL; /* the bufferevent's now */
    bufferevent_openssl_set_allow_dirty_shutdown(r->outer, 1);
    /* fewer, larger moves between the sides (libevent reads 16 KB) */
    bufferevent_set_max_single_read(r->outer, TLS_RELAY_CAP / 4);
    bufferevent_set_max_single_write(r->outer, TLS_RELAY_CAP / 4);
    bufferevent_set_max_single_read(r->inner, TLS_RELAY_CAP / 4);
    bufferevent_set_max_single_write(r->inner, TLS_RELAY_CAP / 4);
    bufferevent_setcb(r->outer, relay_read, relay_write, relay_event, r);
    bufferevent_setwatermark(r->outer, EV_WRITE, TLS_RELAY_CAP / 2, 0);
    bufferevent_enable(r->outer, EV_READ | EV_WRITE);
    bufferevent_setwatermark(r->inner, EV_READ, 0, 0);
    bufferevent_enable(r->inner, r->eof_inner ? EV_WRITE : EV_READ | EV_WRITE);
    /* what the session wrote meanwhile; its end, if it came */
    if (evbuffer_get_length(bufferevent_get_input(r->inner)) > 0)
        relay_read(r->inner, r);
    if (r->eof_inner)
        linger_start(r);
    return 0;
}

static void wait_cb(evutil_socket_t fd, short what, void *arg);

/* Waits for what on fd (-1: only the time), at most RELAY_LINGER_S
 * seconds (ms when given). */
static void wait_for(struct relay *r, evutil_socket_t fd, short what, long ms)
{
    struct timeval tv = { RELAY_LINGER_S, 0 };

    if (ms > 0) {
        tv.tv_sec = ms / 1000;
        tv.tv_usec = (ms % 1000) * 1000;
    }
    if (r->wait_assigned)
        event_del(&r->wait_ev);
    event_assign(&r->wait_ev, r->base, fd, what, wait_cb, r);
    r->wait_assigned = true;
    event_add(&r->wait_ev, &tv);
}

/* The handshake of a client's relay, done: libevent takes the session. */
static void hs_done(struct relay *r)
{
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;

    r->up = true;
    if (r->wait_assigned)
        event_del(&r->wait_ev);
    if (r->early != NULL && evbuffer_get_length(r->early) == 0) {
        /* the early bytes were read: the plain socket BIO from now on */
        evbuffer_free(r->early);
        r->early = NULL;
        SSL_set_fd(r->ssl, r->fd);
    }
    SSL_get0_alpn_selected(r->ssl, &alpn, &alpn_len);
    log_debug("%s: TLS %s, %s%s%.*s", r->who, SSL_get_version(r->ssl),
              SSL_get_cipher_name(r->ssl), alpn_len ? ", ALPN " : "",
              (int)alpn_len, alpn != NULL ? (const char *)alpn : "");
    if (open_outer(r) < 0) {
        log_warn("%s: out of memory; closed", r->who);
        relay_free(r);
    }
}

/* The client's hello was read and the handshake stopped there: the
 * backend's relay may start; this one goes on when the backend has picked
 * (or when there is nothing to pass on). */
static void hello_read(struct relay *r)
{
    struct tls_link *l = r->tl;

    l->offered = true;
    /* (r is not waiting yet: a backend relay that fails here does not
     * step it) */
    if (l->backend != NULL && l->backend->state == RELAY_WAITING)
        backend_go(l->backend);
    if (l->offer_len == 0 || l->backend_gone) {
        hs_step(r);
        return;
    }
    r->state = RELAY_WAITING;
    wait_for(r, -1, 0, 0); /* until the backend picks, or the time */
}

/* Moves a client's handshake on as far as its socket allows. */
static void hs_step(struct relay *r)
{
    char why[256];
    unsigned long e;
    int rc;

    r->state = RELAY_HANDSHAKE;
    ERR_clear_error();
    rc = SSL_do_handshake(r->ssl);
    if (rc == 1) {
        hs_done(r);
        return;
    }
    switch (SSL_get_error(r->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        wait_for(r, r->fd, EV_READ, 0);
        return;
    case SSL_ERROR_WANT_WRITE:
        wait_for(r, r->fd, EV_WRITE, 0);
        return;
    case SSL_ERROR_WANT_CLIENT_HELLO_CB:
        hello_read(r);
        return;
    default:
        e = ERR_get_error();
        ERR_clear_error();
        if (e != 0)
            log_warn("%s: TLS handshake failed: %s; closed", r->who,
                     ERR_error_string(e, why));
        else
            log_info("%s: during the handshake: %s; closed", r->who,
                     rc == 0 || errno == 0
                         ? "the client left"
                         : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        relay_free(r);
        return;
    }
}

static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
    struct relay *r = arg;

    (void)fd;
    switch (r->state) {
    case RELAY_DELAYED:
        /* tls_handshake_delay is over */
        if (r->accepting)
            hs_step(r);
        else
            backend_go(r);
        return;
    case RELAY_WAITING:
        /* a client's: no pick came in time; on without it */
        log_info("%s: the backend's handshake did not end in %d s; ALPN "
                 "not passed on", r->who, RELAY_LINGER_S);
        hs_step(r);
        return;
    case RELAY_HANDSHAKE:
        if (what & EV_TIMEOUT) {
            log_info("%s: no handshake progress for %d s; closed", r->who,
                     RELAY_LINGER_S);
            relay_free(r);
            return;
        }
        hs_step(r);
        return;
    case RELAY_OPEN:
        return;
    }
}

/* A backend's relay starts its handshake, offering the client's list. */
static void backend_go(struct relay *r)
{
    struct tls_link *l = r->tl;

    if (r->conf->alpn_h2) {
        if (SSL_set_alpn_protos(r->ssl, (const unsigned char *)"\x02h2", 3) != 0)
            log_info("%s: ALPN h2 not offered: out of memory", r->who);
    } else if (l != NULL && l->offer_len > 0 &&
               SSL_set_alpn_protos(r->ssl, l->offer,
                                   (unsigned)l->offer_len) != 0) {
        log_info("%s: ALPN not passed on: out of memory", r->who);
    }
    if (open_outer(r) < 0) {
        log_warn("%s: out of memory; closed", r->who);
        relay_free(r);
    }
}

/* OpenSSL read the ClientHello: fail it with the tls_alert fault's alert,
 * or stop there once (a linked relay) to pass its ALPN list on. */
static int hello_cb(SSL *ssl, int *al, void *arg)
{
    struct relay *r = relay_index >= 0 ? SSL_get_ex_data(ssl, relay_index)
                                       : NULL;
    const unsigned char *ext;
    size_t len;

    (void)arg;
    if (r == NULL)
        return SSL_CLIENT_HELLO_SUCCESS;
    if (r->alert > 0) {
        *al = r->alert;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (r->tl == NULL || r->hello_read)
        return SSL_CLIENT_HELLO_SUCCESS;
    r->hello_read = true;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
                                  &ext, &len) == 1) {
        r->tl->offer_len = tls_alpn_filter(ext, len, r->conf->alpn_http1,
                                           r->tl->offer, sizeof(r->tl->offer));
        if (r->tl->offer_len == 0 && len > 2 + ALPN_MAX)
            log_info("%s: an ALPN list over %d bytes is not passed on",
                     r->who, ALPN_MAX);
    }
    return SSL_CLIENT_HELLO_RETRY;
}

/* The client gets the backend's pick when it offered it; else no ALPN. */
static int alpn_select_cb(SSL *ssl, const unsigned char **out,
                          unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg)
{
    struct relay *r = relay_index >= 0 ? SSL_get_ex_data(ssl, relay_index)
                                       : NULL;
    struct tls_link *l = r != NULL ? r->tl : NULL;
    unsigned int at = 0;

    (void)arg;
    if (r != NULL && r->conf->alpn_h2) {
        /* the relay behind speaks HTTP/2 whatever the backend picked */
        while (at < inlen) {
            unsigned int n = in[at];
            if (at + 1 + n > inlen)
                break;
            if (n == 2 && memcmp(in + at + 1, "h2", 2) == 0) {
                *out = in + at + 1;
                *outlen = 2;
                return SSL_TLSEXT_ERR_OK;
            }
            at += 1 + n;
        }
        return SSL_TLSEXT_ERR_NOACK;
    }
    if (l == NULL || l->pick_len == 0)
        return SSL_TLSEXT_ERR_NOACK;
    while (at < inlen) {
        unsigned int n = in[at];
        if (at + 1 + n > inlen)
            break;
        if (n == l->pick_len && memcmp(in + at + 1, l->pick, n) == 0) {
            *out = in + at + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        at += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* A BIO on the client's socket that first gives the bytes read before the
 * relay existed (r->early): the ClientHello that came right behind a
 * STARTTLS request. Used for the handshake only. */
static BIO_METHOD *early_method;

static int early_read(BIO *b, char *buf, int len)
{
    struct relay *r = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (r->early != NULL && evbuffer_get_length(r->early) > 0)
        return evbuffer_remove(r->early, buf, (size_t)len);
    n = recv(r->fd, buf, (size_t)len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)n;
}

static int early_write(BIO *b, const char *buf, int len)
{
    struct relay *r = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    n = send(r->fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)n;
}

static long early_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct relay *r = BIO_get_data(b);

    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_C_GET_FD: /* libevent keeps a BIO that has the socket */
        if (ptr != NULL)
            *(int *)ptr = r->fd;
        return r->fd;
    default:
        return 0;
    }
}

static BIO *early_bio(struct relay *r)
{
    BIO *b;

    if (early_method == NULL) {
        early_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                    "vaurien early bytes");
        if (early_method == NULL)
            return NULL;
        BIO_meth_set_read(early_method, early_read);
        BIO_meth_set_write(early_method, early_write);
        BIO_meth_set_ctrl(early_method, early_ctrl);
    }
    b = BIO_new(early_method);
    if (b != NULL) {
        BIO_set_data(b, r);
        BIO_set_init(b, 1);
    }
    return b;
}

static void linger_done(evutil_socket_t fd, short what, void *arg)
{
    struct relay *r = arg;

    (void)fd;
    (void)what;
    log_debug("%s: one side ended and nothing moved for %d s; closed",
              r->who, RELAY_LINGER_S);
    relay_free(r);
}

/* A side ended: the relay goes after RELAY_LINGER_S seconds in which no
 * byte moved. */
static void linger_start(struct relay *r)
{
    struct timeval tv = { RELAY_LINGER_S, 0 };

    if (r->linger_ev == NULL)
        r->linger_ev = evtimer_new(r->base, linger_done, r);
    if (r->linger_ev != NULL)
        evtimer_add(r->linger_ev, &tv);
}

/* Bytes moved: a lingering relay has RELAY_LINGER_S seconds again. */
static void linger_on(struct relay *r)
{
    struct timeval tv = { RELAY_LINGER_S, 0 };

    if (r->linger_ev != NULL)
        evtimer_add(r->linger_ev, &tv);
}

static struct bufferevent *other(struct relay *r, struct bufferevent *bev)
{
    return bev == r->outer ? r->inner : r->outer;
}

/* A side whose source ended has its bytes written: close the other's
 * write end (close_notify on TLS, shutdown on the pair). Ends the relay
 * when both are done. Returns false when r was freed. */
static bool settle(struct relay *r)
{
    if (r->outer == NULL)
        return true; /* not open yet */
    if (r->eof_inner && !r->shut_outer &&
        evbuffer_get_length(bufferevent_get_output(r->outer)) == 0) {
        SSL *ssl = bufferevent_openssl_get_ssl(r->outer);
        if (r->up && ssl != NULL && !r->dirty)
            SSL_shutdown(ssl); /* close_notify */
        else
            shutdown(bufferevent_getfd(r->outer), SHUT_WR);
        r->shut_outer = true;
    }
    if (r->eof_outer && !r->shut_inner &&
        evbuffer_get_length(bufferevent_get_output(r->inner)) == 0) {
        shutdown(bufferevent_getfd(r->inner), SHUT_WR);
        r->shut_inner = true;
    }
    if (r->shut_outer && r->shut_inner) {
        relay_free(r);
        return false;
    }
    return true;
}

static void relay_read(struct bufferevent *bev, void *arg)
{
    struct relay *r = arg;
    struct bufferevent *to = other(r, bev);

    if (to == NULL)
        return; /* not open: stays in the input until outer exists */
    linger_on(r);
    evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(bev));
    if (evbuffer_get_length(bufferevent_get_output(to)) >= TLS_RELAY_CAP)
        bufferevent_disable(bev, EV_READ); /* until `to` drains */
}

static void relay_write(struct bufferevent *bev, void *arg)
{
    struct relay *r = arg;
    struct bufferevent *from = other(r, bev);

    linger_on(r);
    if (from != NULL && !(bev == r->outer ? r->eof_inner : r->eof_outer))
        bufferevent_enable(from, EV_READ);
    settle(r);
}

/* A backend's handshake ended: its pick goes to the client's relay. */
static void backend_up(struct relay *r, SSL *ssl)
{
    struct tls_link *l = r->tl;
    const unsigned char *alpn = NULL;
    unsigned int len = 0;

    SSL_get0_alpn_selected(ssl, &alpn, &len);
    log_debug("%s: TLS %s, %s%s%.*s", r->who, SSL_get_version(ssl),
              SSL_get_cipher_name(ssl), len ? ", ALPN " : "", (int)len,
              alpn != NULL ? (const char *)alpn : "");
    if (l == NULL)
        return;
    if (alpn != NULL && len > 0 && len <= sizeof(l->pick)) {
        memcpy(l->pick, alpn, len);
        l->pick_len = len;
    }
    l->backend_gone = true; /* nothing more to wait for */
    if (l->client != NULL && l->client->state == RELAY_WAITING)
        hs_step(l->client);
}

static void relay_event(struct bufferevent *bev, short what, void *arg)
{
    struct relay *r = arg;
    unsigned long e = 0;
    char why[256];

    if (what & BEV_EVENT_CONNECTED) {
        r->up = true;
        backend_up(r, bufferevent_openssl_get_ssl(r->outer));
        return;
    }
    if (what & (BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT)) {
        /* a write failed (libevent reports it as EOF|WRITING with dirty
         * shutdowns allowed): that peer is gone, and what is queued for
         * it never leaves; or a linger ran out */
        log_debug("%s: %s; closed", r->who, what & BEV_EVENT_TIMEOUT
                                                 ? "timed out"
                                                 : "gone while written to");
        relay_free(r);
        return;
    }
    if (bev == r->inner && r->state != RELAY_OPEN &&
        evbuffer_get_length(bufferevent_get_input(r->inner)) == 0) {
        /* the session ended before TLS began: nothing is due anywhere */
        log_debug("%s: the session ended before the handshake; closed", r->who);
        relay_free(r);
        return;
    }
    if (bev == r->outer && (what & BEV_EVENT_ERROR))
        e = bufferevent_get_openssl_error(bev); /* taken off once */
    if (e != 0 && r->up &&
        ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        what = BEV_EVENT_EOF; /* an end without close_notify: an end */
    if (what & BEV_EVENT_EOF) {
        /* the rest of its input was read: move it on first */
        relay_read(bev, r);
        if (bev == r->outer)
            r->eof_outer = true;
        else
            r->eof_inner = true;
        bufferevent_disable(bev, EV_READ);
        /* one side ended: from now on the relay goes after
         * RELAY_LINGER_S seconds without a byte moved, whatever the peer
         * does (one that stopped reading, never finished its handshake,
         * or will not close); counted once the TLS side is open (a
         * handshake has bounds of its own) */
        if (r->state == RELAY_OPEN)
            linger_start(r);
        settle(r);
        return;
    }
    if (bev == r->outer && (what & BEV_EVENT_ERROR)) {
        SSL *ssl = bufferevent_openssl_get_ssl(r->outer);
        long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
        if (!r->up && v != X509_V_OK)
            log_warn("%s: certificate verify failed: %s; closed", r->who,
                     X509_verify_cert_error_string(v));
        else if (e != 0)
            log_warn("%s: TLS %s: %s; closed", r->who,
                     r->up ? "error" : "handshake failed",
                     ERR_error_string(e, why));
        else
            log_info("%s: %s%s; closed", r->who,
                     r->up ? "" : "during the handshake: ",
                     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
    relay_free(r); /* both sides closed: the session sees its end */
}

/* Sets up a client's SSL: the fault's certificate or alert, the relay for
 * the callbacks, the socket (behind the early bytes, if any). Returns 0
 * or -ENOMEM. */
static int accept_setup(struct relay *r, const struct tls_fault *fault)
{
    int kind = fault != NULL ? fault->kind : BEHAV_TLS_NONE;

    if (relay_index < 0)
        relay_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (relay_index < 0 || SSL_set_ex_data(r->ssl, relay_index, r) != 1)
        return -ENOMEM;
    if (kind == BEHAV_TLS_ALERT)
        r->alert = (int)fault->value;
    if (kind == BEHAV_TLS_BAD_CERT && fault->cert >= 0 && fault->cert < 3) {
        SSL_use_certificate(r->ssl, r->conf->bad[fault->cert]);
        SSL_use_PrivateKey(r->ssl, r->conf->bad_key);
    }
    if (r->early != NULL) {
        BIO *b = early_bio(r);
        if (b == NULL)
            return -ENOMEM;
        SSL_set_bio(r->ssl, b, b);
    } else if (SSL_set_fd(r->ssl, r->fd) != 1) {
        return -ENOMEM;
    }
    SSL_set_accept_state(r->ssl);
    return 0;
}

/* Sets up a backend's SSL: SNI and the name its certificate must have. */
static void connect_setup(struct relay *r)
{
    struct tls_conf *t = r->conf;

    if (t->sni[0] != '\0')
        SSL_set_tlsext_host_name(r->ssl, t->sni);
    if (t->verify_host[0] != '\0') {
        if (is_ip(t->verify_host))
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(r->ssl), t->verify_host);
        else
            SSL_set1_host(r->ssl, t->verify_host);
    }
}

int tls_relay_start(struct event_base *base, struct tls_conf *t,
                    bool server, const struct tls_fault *fault,
                    evutil_socket_t fd, const char *who,
                    struct evbuffer *early, struct tls_link *link,
                    evutil_socket_t *plain)
{
    int kind = fault != NULL ? fault->kind : BEHAV_TLS_NONE;
    evutil_socket_t pair[2];
    struct relay *r = calloc(1, sizeof(*r));
    int one = 1;

    if (r == NULL || evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0) {
        free(r);
        evutil_closesocket(fd);
        return -ENOMEM;
    }
    LIST_INSERT_HEAD(&t->relays, r, link);
    r->conf = t;
    r->base = base;
    r->fd = fd;
    r->accepting = server;
    r->dirty = kind == BEHAV_TLS_NO_CLOSE_NOTIFY;
    evutil_make_socket_nonblocking(pair[0]);
    evutil_make_socket_nonblocking(pair[1]);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    snprintf(r->who, sizeof(r->who), "%s", who);
    r->inner = bufferevent_socket_new(base, pair[0], BEV_OPT_CLOSE_ON_FREE);
    if (r->inner == NULL) {
        evutil_closesocket(pair[0]);
        evutil_closesocket(pair[1]);
        LIST_REMOVE(r, link);
        evutil_closesocket(fd);
        free(r);
        return -ENOMEM;
    }
    bufferevent_setcb(r->inner, relay_read, relay_write, relay_event, r);
    bufferevent_setwatermark(r->inner, EV_WRITE, TLS_RELAY_CAP / 2, 0);
    /* until outer exists the session's bytes wait in inner's input: at
     * most the cap */
    bufferevent_setwatermark(r->inner, EV_READ, 0, TLS_RELAY_CAP);
    if (link != NULL) {
        link->refs++;
        r->tl = link;
        if (server)
            link->client = r;
        else
            link->backend = r;
    }
    if (early != NULL && evbuffer_get_length(early) > 0) {
        r->early = evbuffer_new();
        if (r->early == NULL || evbuffer_add_buffer(r->early, early) < 0)
            goto fail;
    }
    r->ssl = SSL_new(server ? t->server : t->client);
    if (r->ssl == NULL)
        goto fail;
    if (server && accept_setup(r, fault) < 0)
        goto fail;
    if (!server)
        connect_setup(r);
    /* the session's end is seen before outer exists (relay_event) */
    bufferevent_enable(r->inner, EV_READ | EV_WRITE);
    *plain = pair[1];
    if (kind == BEHAV_TLS_DELAY && fault->value > 0) {
        /* the handshake starts when the delay is over: until then the
         * ClientHello waits in the kernel */
        r->state = RELAY_DELAYED;
        wait_for(r, -1, 0, (long)fault->value);
    } else if (server) {
        hs_step(r); /* may free r: the session sees its end */
    } else if (link != NULL && link->client != NULL && !link->offered) {
        r->state = RELAY_WAITING; /* for the client's offer */
    } else {
        backend_go(r);
    }
    return 0;
fail:
    relay_free(r);
    evutil_closesocket(pair[1]);
    return -ENOMEM;
}
