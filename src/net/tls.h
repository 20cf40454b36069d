/*
 * tls: TLS in front of a session (terminate) and behind it (originate).
 *
 *   TLS client ──▶ relay (OpenSSL server) ──socketpair──▶ session ──▶ ...
 *   ... session ──socketpair──▶ relay (OpenSSL client) ──▶ TLS backend
 *
 * A relay decrypts one TCP connection into one end of a socketpair and
 * encrypts back; the session holds the other end as if it were the plain
 * socket. So framing, behaviors, toxics and the fuzzed framers are the
 * same behind TLS, and the TLS faults live here. Each relay direction
 * buffers at most TLS_RELAY_CAP bytes, then stops reading its source.
 * Half-close is relayed (close_notify one way, shutdown the other), and a
 * relay ends when both directions have.
 */
#ifndef VAURIEN_TLS_H
#define VAURIEN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/util.h>

#define TLS_RELAY_CAP (256u << 10)

struct settings;
struct ssl_ctx_st;

struct x509_st;
struct evp_pkey_st;
struct relay;
struct evbuffer;
LIST_HEAD(relay_list, relay);

/* What a proxy terminates and originates with (NULL: plain). */
struct tls_conf {
    struct ssl_ctx_st *server; /* --proxy-tls */
    struct ssl_ctx_st *client; /* --backend-tls */
    struct x509_st *bad[3];    /* bad_cert: expired, wrong_name,
                                  self_signed (made with the server's) */
    struct evp_pkey_st *bad_key;
    struct relay_list relays;  /* open, freed with the conf */
    char sni[256];             /* the backend's host name ("" for an IP) */
    char verify_host[256];     /* what its certificate must name ("":
                                  not checked, --backend-tls-insecure) */
    bool implicit_server;      /* clients start with TLS (--proxy-tls) */
    bool implicit_client;      /* the backend too (--backend-tls); else the
                                  contexts are for STARTTLS (--starttls) */
    bool alpn_http1;           /* ALPN: only http/1.x is passed on (the
                                  http framer reads no other) */
    bool alpn_h2;              /* http2, grpc: the client is given h2
                                  when it offers it, the backend is
                                  offered h2 alone (net/h2.c speaks HTTP/2
                                  to both, whatever else they offer) */
    bool closing;              /* deinit: relays go without telling their
                                  link's other relay */
};

/* Builds the contexts st asks for: the server's from --tls-cert/--tls-key,
 * or from a certificate made now for listen_host, signed by a CA made now
 * and written to --tls-ca-out; the client's with --backend-ca (or the
 * system's store), --backend-cert/--backend-key. Returns 0 or a negative
 * errno with a one-line message in err. */
int tls_conf_init(struct tls_conf *t, const struct settings *st,
                  const char *listen_host, const char *backend_host,
                  char *err, size_t errlen);
/* Frees the contexts and closes every relay still open. */
void tls_conf_deinit(struct tls_conf *t);

/* The TLS fault a connection drew (behav/tls.c), for its relay. */
struct tls_fault {
    int kind;        /* enum behav_tls */
    long long value; /* delay ms, alert number */
    int cert;        /* bad_cert: 0 expired, 1 wrong_name, 2 self_signed */
};

/* bad_cert's kind as an index of tls_conf.bad, or -1. */
int tls_bad_cert_kind(const char *text);

/*
 * A link joins the two relays of one connection when the proxy terminates
 * and originates TLS, so that ALPN passes through: the client's relay
 * reads the ClientHello and stops there; the backend's relay offers the
 * client's list (filtered, tls_alpn_filter) in its own handshake; the
 * client's handshake then goes on with the backend's pick. Each relay and
 * the session hold a reference; a relay that goes lets the other go on.
 */
struct tls_link;

struct tls_link *tls_link_create(void);
void tls_link_put(struct tls_link *l);

/* Reads an ALPN extension's body (a 2-byte length, then 1-byte-length
 * names) and writes the names to pass on into out (the wire format
 * SSL_set_alpn_protos takes): all of them, or only http/1.1 and http/1.0
 * when http1. Returns the bytes written: 0 for none, or for a malformed
 * extension or one that does not fit in cap. */
size_t tls_alpn_filter(const unsigned char *ext, size_t len, bool http1,
                       unsigned char *out, size_t cap);

/* Makes a socketpair and a relay between fd (a TCP connection: an
 * accepted client when server, a connected backend otherwise) and one
 * end; returns the other end in *plain. who names the peer in logs.
 * early (may be NULL): bytes already read from fd that belong to the TLS
 * stream (a ClientHello that came with a STARTTLS request); they are moved
 * into the relay. link (may be NULL): the connection's link, referenced.
 * Returns 0, or a negative errno (fd is then closed). */
int tls_relay_start(struct event_base *base, struct tls_conf *t,
                    bool server, const struct tls_fault *fault,
                    evutil_socket_t fd, const char *who,
                    struct evbuffer *early, struct tls_link *link,
                    evutil_socket_t *plain);

#endif
