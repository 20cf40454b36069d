/* ns per call of a custom behavior, in process (bench/lua.py builds it
 * against the core library): steadier than request rates on shared
 * cores.
 *
 *     lua_call [LUA SOURCE]
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include "behav/behav.h"
#include "core/script.h"
#include "proto/proto.h"
int main(int argc, char **argv) {
    char err[600];
    const char *src = argc > 1 ? argv[1] : "return { request = function(req) end }";
    if (behav_lua_load("b", src, strlen(src), "", err, sizeof err)) { puts(err); return 1; }
    struct behav_inst b; behav_inst_init(&b, behav_at(behav_find("b")));
    struct evbuffer *in = evbuffer_new(); evbuffer_add(in, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 20);
    struct rng r; rng_seed(&r, 1); int state = 0;
    struct proto_unit u = { .flags = PROTO_HEAD|PROTO_END };
    struct behav_ctx ctx = { .proxy = "p", .proto = &proto_redis, .unit = &u, .in = in, .len = 20, .rng = &r, .conn = 1, .client = "c", .state = &state };
    struct behav_verdict v;
    struct timespec a, z; clock_gettime(CLOCK_MONOTONIC, &a);
    int n = 1000000;
    for (int i = 0; i < n; i++) { ctx.index = i; behav_decide(&b, &ctx, &v); }
    clock_gettime(CLOCK_MONOTONIC, &z);
    printf("%.0f ns/call\n", ((z.tv_sec-a.tv_sec)*1e9 + (z.tv_nsec-a.tv_nsec))/n);
}
