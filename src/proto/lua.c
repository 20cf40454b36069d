/*
 * lua: protocols written in Lua (--protocol-file, [protocol:NAME] script).
 *
 *   client bytes  ──▶ hooks.request(buf)      ──▶ length of the next request
 *   backend bytes ──▶ hooks.reply(buf, req)   ──▶ length of the next reply
 *   a request     ──▶ hooks.parse(bytes)      ──▶ the parts behaviors see
 *   verdict error ──▶ hooks.error_reply(req, opts) ──▶ the error's bytes
 *
 * request and reply see the bytes not framed yet (at most FRAME_MAX) and
 * return the length of the unit that starts them: it may be longer than
 * what has arrived (a length prefix tells it), and the rest then streams
 * through without calling the script again. nil: more bytes are needed;
 * false, or an error: these bytes are not the protocol, and the
 * connection is passed through as for the built-ins. A second result
 * "noreply" (request) says the backend will not answer it, "push" (reply)
 * that it answers no request.
 *
 * Each connection keeps the parse() result of its requests in flight,
 * numbered in u->info, for reply() and for the behaviors.
 */
#include "proto/proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "behav/behav.h"
#include "core/script.h"
#include "net/entry.h"

#define FRAME_MAX (64u << 10) /* bytes a framer sees at once */
#define KEPT_MAX (2 * ENTRY_INFLIGHT_MAX) /* requests remembered */

struct lua_proto {
    struct proto_ops ops;
    char name[SCRIPT_NAME_MAX + 1];
    char who[SCRIPT_NAME_MAX + 16]; /* "protocol NAME", for logs */
    char *help;
    int request, reply, parse, error_reply; /* the hooks (references) */
};

struct lua_pstate {
    const struct lua_proto *lp;
    unsigned long long left[2]; /* bytes of the unit in flight, per dir */
    uint32_t seq;               /* requests seen */
    int reqs;                   /* seq -> parse() result (reference) */
};

static const struct opt_decl no_opts[] = { { 0 } };

static void lp_init(void *st, const struct proto_ops *ops,
                    const union opt_val *opts, const char *backend)
{
    struct lua_pstate *ps = st;

    (void)opts;
    (void)backend;
    ps->lp = ops->script;
}

static void lp_deinit(void *st)
{
    struct lua_pstate *ps = st;

    script_unref(ps->reqs);
    ps->reqs = 0;
}

/* Pushes the table of this connection's requests. */
static void push_reqs(lua_State *L, struct lua_pstate *ps)
{
    if (ps->reqs == 0) {
        lua_newtable(L);
        ps->reqs = script_ref();
    }
    script_push(ps->reqs);
}

struct frame_call {
    struct lua_pstate *ps;
    enum proto_dir dir;
    struct evbuffer *in;
    struct proto_unit *u;
    size_t avail;
    long long len;  /* the answer: > 0 a length, 0 more, < 0 not this */
    bool flag;      /* "noreply" or "push" */
};

static void push_bytes(lua_State *L, struct evbuffer *in, size_t off,
                       size_t n)
{
    luaL_Buffer b;
    struct evbuffer_ptr at;
    char *dst = luaL_buffinitsize(L, &b, n);

    evbuffer_ptr_set(in, &at, off, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(in, &at, dst, n);
    luaL_pushresultsize(&b, n);
}

/* Protected: asks request() or reply() for the next unit's length; for a
 * request, keeps what parse() says of it. */
static int do_frame(lua_State *L)
{
    struct frame_call *c = lua_touserdata(L, 1);
    const struct lua_proto *lp = c->ps->lp;
    size_t n = c->avail < FRAME_MAX ? c->avail : FRAME_MAX;
    int bytes;

    push_bytes(L, c->in, c->u->skip, n);
    bytes = lua_gettop(L);
    push_reqs(L, c->ps);
    if (c->dir == PROTO_UP) {
        script_push(lp->request);
        lua_pushvalue(L, bytes);
        lua_call(L, 1, 2);
    } else {
        script_push(lp->reply);
        lua_pushvalue(L, bytes);
        lua_rawgeti(L, bytes + 1, (lua_Integer)c->u->info);
        lua_call(L, 2, 2);
    }
    c->flag = lua_type(L, -1) == LUA_TSTRING &&
              strcmp(lua_tostring(L, -1),
                     c->dir == PROTO_UP ? "noreply" : "push") == 0;
    lua_pop(L, 1);
    if (lua_isnil(L, -1)) {
        c->len = n >= FRAME_MAX ? -1 : 0;
    } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
        c->len = lua_tointeger(L, -1);
    } else if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        c->len = -1;
    } else {
        return luaL_error(L, "%s() must return a length > 0, nil (more "
                          "bytes) or false (not this protocol)",
                          c->dir == PROTO_UP ? "request" : "reply");
    }
    lua_pop(L, 1);
    if (c->dir == PROTO_UP && c->len > 0) {
        uint32_t seq = ++c->ps->seq;
        size_t unit = (size_t)c->len < n ? (size_t)c->len : n;
        lua_pushnil(L);
        lua_rawseti(L, bytes + 1, (lua_Integer)(seq - KEPT_MAX));
        if (lp->parse > 0) {
            script_push(lp->parse);
            lua_pushlstring(L, lua_tostring(L, bytes), unit);
            lua_call(L, 1, 1);
            if (!lua_istable(L, -1) && !lua_isnil(L, -1))
                return luaL_error(L, "parse() must return a table or nil");
        } else {
            lua_createtable(L, 0, 1);
            lua_pushlstring(L, lua_tostring(L, bytes), unit);
            lua_setfield(L, -2, "bytes");
        }
        lua_rawseti(L, bytes + 1, (lua_Integer)seq);
        c->u->info = seq;
    }
    return 0;
}

static ssize_t lp_frame(void *st, enum proto_dir dir, struct evbuffer *in,
                        struct proto_unit *u)
{
    struct lua_pstate *ps = st;
    size_t len = evbuffer_get_length(in);
    size_t avail = len > u->skip ? len - u->skip : 0;
    struct frame_call c = { ps, dir, in, u, avail, 0, false };
    lua_State *L = script_state();
    size_t take;

    if (avail == 0)
        return 0;
    if (ps->left[dir] > 0) { /* the rest of a unit whose length is known */
        take = avail < ps->left[dir] ? avail : (size_t)ps->left[dir];
        ps->left[dir] -= take;
        if (ps->left[dir] == 0)
            u->flags |= PROTO_END;
        return (ssize_t)take;
    }
    if (L == NULL)
        return -1;
    script_set_rng(NULL);
    lua_pushcfunction(L, do_frame);
    lua_pushlightuserdata(L, &c);
    if (script_call(ps->lp->who, 1, 0) < 0 || c.len < 0)
        return -1;
    if (c.len == 0)
        return 0;
    u->flags |= PROTO_HEAD;
    if (c.flag)
        u->flags |= dir == PROTO_UP ? PROTO_NOREPLY : PROTO_PUSH;
    take = avail < (unsigned long long)c.len ? avail : (size_t)c.len;
    ps->left[dir] = (unsigned long long)c.len - take;
    if (ps->left[dir] == 0)
        u->flags |= PROTO_END;
    if (dir == PROTO_DOWN && ps->left[dir] == 0 && ps->reqs > 0 &&
        !(u->flags & PROTO_PUSH)) {
        /* the request is answered: forget it (rawseti of nil does not
         * allocate) */
        script_push(ps->reqs);
        lua_pushnil(L);
        lua_rawseti(L, -2, (lua_Integer)u->info);
        lua_pop(L, 1);
    }
    return (ssize_t)take;
}

struct error_call {
    struct lua_pstate *ps;
    const struct proto_error *e;
    const struct proto_unit *req;
    struct evbuffer *out;
    bool *close;
};

static int do_error(lua_State *L)
{
    struct error_call *c = lua_touserdata(L, 1);
    size_t n;
    const char *s;

    script_push(c->ps->lp->error_reply);
    push_reqs(L, c->ps);
    lua_rawgeti(L, -1, (lua_Integer)c->req->info);
    lua_remove(L, -2);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, c->e->status != NULL ? c->e->status : "");
    lua_setfield(L, -2, "status");
    lua_pushstring(L, c->e->message != NULL ? c->e->message : "");
    lua_setfield(L, -2, "message");
    lua_pushinteger(L, c->e->code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, c->e->sqlstate != NULL ? c->e->sqlstate : "");
    lua_setfield(L, -2, "sqlstate");
    lua_pushstring(L, c->e->enhanced != NULL ? c->e->enhanced : "");
    lua_setfield(L, -2, "enhanced");
    lua_call(L, 2, 2);
    if (lua_type(L, -2) != LUA_TSTRING)
        return luaL_error(L, "error_reply() must return a string");
    s = lua_tolstring(L, -2, &n);
    if (evbuffer_add(c->out, s, n) < 0)
        return luaL_error(L, "out of memory");
    *c->close = lua_toboolean(L, -1);
    return 0;
}

static void lp_error_reply(void *st, const struct proto_error *e,
                           const struct proto_unit *req, struct rng *r,
                           struct evbuffer *out, bool *close)
{
    struct lua_pstate *ps = st;
    struct error_call c = { ps, e, req, out, close };
    lua_State *L = script_state();
    size_t before = evbuffer_get_length(out);

    if (L != NULL && ps->lp->error_reply > 0) {
        script_set_rng(r);
        lua_pushcfunction(L, do_error);
        lua_pushlightuserdata(L, &c);
        int rc = script_call(ps->lp->who, 1, 0);
        script_set_rng(NULL);
        if (rc == 0)
            return;
        evbuffer_drain(out, evbuffer_get_length(out) - before);
    }
    proto_garbage_reply(r, out); /* as tcp's */
}

void proto_lua_parsed(lua_State *L, const struct behav_ctx *ctx,
                      const char *k)
{
    struct lua_pstate *ps = ctx->pstate;

    if (ps == NULL || ps->reqs == 0 || ctx->unit == NULL) {
        lua_pushnil(L);
        return;
    }
    script_push(ps->reqs);
    if (lua_rawgeti(L, -1, (lua_Integer)ctx->unit->info) == LUA_TTABLE)
        lua_getfield(L, -1, k);
    else
        lua_pushnil(L);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

void proto_lua_keep(lua_State *L, const struct behav_ctx *ctx, int req)
{
    struct lua_pstate *ps = ctx->pstate;

    req = lua_absindex(L, req);
    if (ps == NULL || ps->reqs == 0 || ctx->unit == NULL)
        return;
    script_push(ps->reqs);
    if (lua_rawgeti(L, -1, (lua_Integer)ctx->unit->info) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            /* req[k] = v: the userdata's __newindex keeps it */
            if (lua_type(L, -2) == LUA_TSTRING) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_settable(L, req);
            } else {
                lua_pop(L, 1);
            }
        }
    }
    lua_pop(L, 2);
}

/* ---- loading ------------------------------------------------------------ */

struct loaded {
    int request, reply, parse, error_reply;
    bool server_first;
    char *help;
};

/* Protected: reads the hooks from the table at 2 into the struct at 1. */
static int read_table(lua_State *L)
{
    struct loaded *ld = lua_touserdata(L, 1);
    static const char *const hooks[] = { "request", "reply", "parse",
                                         "error_reply" };
    int *refs[] = { &ld->request, &ld->reply, &ld->parse, &ld->error_reply };

    lua_getfield(L, 2, "help");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "help must be a string");
    ld->help = strdup(lua_isnil(L, -1) ? "A protocol written in Lua."
                                       : lua_tostring(L, -1));
    if (ld->help == NULL)
        return luaL_error(L, "out of memory");
    lua_pop(L, 1);
    lua_getfield(L, 2, "server_first");
    ld->server_first = lua_toboolean(L, -1);
    lua_pop(L, 1);
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, 2, hooks[i]);
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
            return luaL_error(L, "%s must be a function", hooks[i]);
        if (i < 2 && lua_isnil(L, -1))
            return luaL_error(L, "a protocol needs request(buf) and "
                                 "reply(buf, req) functions");
        lua_pop(L, 1);
    }
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, 2, hooks[i]);
        *refs[i] = script_ref();
    }
    return 0;
}

int proto_lua_load(const char *name, const char *source, size_t len,
                   const char *path, char *err, size_t errlen)
{
    struct loaded ld;
    struct lua_proto *lp;
    int i = proto_find(name), rc;

    memset(&ld, 0, sizeof(ld));
    if (script_check_name("protocol", name, err, errlen) < 0)
        return -EINVAL;
    lp = i >= 0 ? proto_at(i)->script : NULL;
    if (i >= 0 && lp == NULL) {
        snprintf(err, errlen, "'%s' is a built-in protocol; pick another "
                 "name", name);
        return -EEXIST;
    }
    if (lp == NULL && proto_count() >= PROTO_MAX) {
        snprintf(err, errlen, "at most %d protocols (built-in and custom)",
                 PROTO_MAX);
        return -ENOSPC;
    }
    rc = script_load_table(name, source, len, path, read_table, &ld, err,
                           errlen);
    if (rc < 0) {
        free(ld.help);
        script_unref(ld.request);
        script_unref(ld.reply);
        script_unref(ld.parse);
        script_unref(ld.error_reply);
        return rc;
    }
    if (lp == NULL) {
        lp = calloc(1, sizeof(*lp));
        if (lp == NULL) {
            snprintf(err, errlen, "out of memory");
            free(ld.help);
            return -ENOMEM;
        }
        snprintf(lp->name, sizeof(lp->name), "%s", name);
        snprintf(lp->who, sizeof(lp->who), "protocol %s", name);
        lp->ops.name = lp->name;
        lp->ops.opts = no_opts;
        lp->ops.state_size = sizeof(struct lua_pstate);
        lp->ops.init = lp_init;
        lp->ops.deinit = lp_deinit;
        lp->ops.frame = lp_frame;
        lp->ops.error_reply = lp_error_reply;
        lp->ops.script = lp;
        proto_register(&lp->ops);
    } else {
        free(lp->help);
        script_unref(lp->request);
        script_unref(lp->reply);
        script_unref(lp->parse);
        script_unref(lp->error_reply);
    }
    lp->help = ld.help;
    lp->ops.help = lp->help;
    lp->ops.server_first = ld.server_first;
    lp->request = ld.request;
    lp->reply = ld.reply;
    lp->parse = ld.parse;
    lp->error_reply = ld.error_reply;
    return 0;
}

int proto_lua_load_file(const char *name, const char *path, char *err,
                        size_t errlen)
{
    return script_load_file(proto_lua_load, name, path, err, errlen);
}
