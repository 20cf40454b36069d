/* Fuzzes the http2 relay (net/h2.c) end to end, both directions: a real
 * proxy (--protocol http2, a mix of every per-stream fault) in this
 * process, a client socket and the backend socket it connects to; the
 * input is a conversation of chunks each side sends, and whatever the
 * proxy does with them (streams mapped, answered, held, reset, the
 * backend lost) must neither crash, leak nor outlive the connection.
 *
 * Input: one byte of flags (bit 0: the harness sends the client's preface
 * and SETTINGS first; bit 1: the backend's SETTINGS), then chunks: a
 * header byte (bit 7: from the backend, else from the client; bits 0-5:
 * length - 1; bit 6: that length times 16) and up to that many bytes.
 * After the last chunk both sides close. Seeds: h2relay_seeds.py. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "conf/cli.h"
#include "core/log.h"
#include "net/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
static const uint8_t empty_settings[9] = { 0, 0, 0, 4, 0, 0, 0, 0, 0 };

static struct event_base *base;
static struct proxy *proxy;
static int backend_fd = -1;
static struct sockaddr_in proxy_sa;

static int nonblock(int fd)
{
    return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void turn(int n)
{
    for (int i = 0; i < n; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

/* Reads and drops what fd has for us. */
static void drain(int fd)
{
    char buf[16384];

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
    for (int tries = 0; n > 0 && tries < 50; tries++) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else {
            turn(2); /* the proxy reads; then room comes back */
        }
    }
}

static int setup(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof(sa);
    struct settings st;
    struct evdns_base *dns;
    char backend[64], err[1024], bound[80];

    signal(SIGPIPE, SIG_IGN); /* as the binary: a closed peer is an EPIPE */
    log_init("/dev/null", LOG_ERROR);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    backend_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (backend_fd < 0 || bind(backend_fd, (struct sockaddr *)&sa, len) < 0 ||
        listen(backend_fd, 64) < 0 ||
        getsockname(backend_fd, (struct sockaddr *)&sa, &len) < 0 ||
        nonblock(backend_fd) < 0)
        return -1;
    snprintf(backend, sizeof(backend), "127.0.0.1:%d", ntohs(sa.sin_port));
    char *argv[] = {
        "vaurien", "--protocol", "http2", "--proxy", "127.0.0.1:0",
        "--backend", backend, "--seed", "1",
        "--behavior", "15:error,10:delay,10:abort,10:hang,5:blackout",
        "--behavior-delay-sleep", "0.001",
        "--behavior-delay-before", "false", NULL,
    };
    settings_init(&st);
    if (cli_parse((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv, 1, &st,
                  err, sizeof(err)) != CLI_RUN)
        return -1;
    base = event_base_new();
    dns = base != NULL ? evdns_base_new(base, 0) : NULL;
    proxy = dns != NULL ? proxy_create(base, dns, "fuzz", &st) : NULL;
    settings_deinit(&st);
    if (proxy == NULL || proxy_set_enabled(proxy, true, err, sizeof(err)) < 0)
        return -1;
    proxy_bound_addr(proxy, bound, sizeof(bound));
    proxy_sa.sin_family = AF_INET;
    proxy_sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    proxy_sa.sin_port = htons((uint16_t)atoi(strrchr(bound, ':') + 1));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int client, back = -1;
    size_t i = 1;

    if (base == NULL && setup() < 0) {
        fprintf(stderr, "fuzz_h2relay: cannot set up the proxy\n");
        abort();
    }
    if (size < 1)
        return 0;
    /* the same draws for the same input: the connection's generators
     * derive from the seed and its ordinal (session.c) */
    proxy->next_id = 0;
    /* non-blocking: libFuzzer's SIGALRM would interrupt a blocking
     * connect; on loopback it is done by the time the proxy accepts */
    client = socket(AF_INET, SOCK_STREAM, 0);
    if (client < 0 || nonblock(client) < 0 ||
        (connect(client, (struct sockaddr *)&proxy_sa, sizeof(proxy_sa)) < 0 &&
         errno != EINPROGRESS)) {
        fprintf(stderr, "fuzz_h2relay: cannot connect: %s\n", strerror(errno));
        abort();
    }
    for (int tries = 0; back < 0 && tries < 2000; tries++) {
        turn(1);
        back = accept(backend_fd, NULL, NULL);
    }
    if (back < 0) {
        fprintf(stderr, "fuzz_h2relay: the proxy never reached the backend\n");
        abort();
    }
    nonblock(back);
    if (data[0] & 1) {
        send_all(client, (const uint8_t *)PREFACE, 24);
        send_all(client, empty_settings, sizeof(empty_settings));
    }
    if (data[0] & 2)
        send_all(back, empty_settings, sizeof(empty_settings));
    while (i < size) {
        uint8_t h = data[i++];
        size_t n = (size_t)(h & 0x3f) + 1;
        if (h & 0x40)
            n *= 16;
        if (n > size - i)
            n = size - i;
        send_all(h & 0x80 ? back : client, data + i, n);
        i += n;
        turn(3);
        drain(client);
        drain(back);
    }
    turn(3);
    close(client);
    close(back);
    /* every session ends: held streams' timers fire, closes are seen */
    for (int tries = 0; proxy->active > 0 && tries < 5000; tries++) {
        turn(1);
        if (tries > 100)
            usleep(100);
    }
    if (proxy->active > 0) {
        fprintf(stderr, "fuzz_h2relay: a connection outlived both its sides\n");
        abort();
    }
    turn(2); /* closed sessions are freed after the loop pass */
    return 0;
}
