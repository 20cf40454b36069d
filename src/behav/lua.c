/*
 * lua: behaviors written in Lua (--behavior-file, [behavior:NAME] script,
 * POST /behaviors).
 *
 *   request ──▶ hooks.request(req, opts, conn, proxy) ──▶ verdict table
 *   reply   ──▶ hooks.reply(rep, req, opts, conn, proxy) ──▶ verdict table
 *                                  │
 *              the same struct behav_verdict as the built-ins ◀─┘
 *
 * A script returns a table: help, options ({name, type, default, help,
 * min, max} each), and the hooks request and/or reply. A loaded behavior is
 * registered like a built-in, so mixes, flags, INI keys, the API and toxics
 * know it. Loading it again (SIGHUP, a new POST) swaps its hooks for new
 * requests; its options must keep their names and types, since instances
 * already hold values of them. The table `req` is read lazily: the
 * protocol's parts are parsed only when a script asks for one.
 */
#include "behav/behav.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "core/log.h"
#include "core/script.h"
#include "proto/proto.h"

#define BYTES_MAX (1u << 20) /* bytes of a unit a script sees */
#define PARTS_MAX (64u << 10) /* bytes the parts are read from */

struct lua_behav {
    struct behav_ops ops;
    char name[SCRIPT_NAME_MAX + 1];
    char who[SCRIPT_NAME_MAX + 16];        /* "behavior NAME", for logs */
    char *help;
    struct opt_decl decls[OPT_MAX + 1]; /* strings owned */
    int request, reply;                 /* the hooks (references) */
    int request_args, reply_args;       /* parameters they declare: the
                                           ones not declared are not made */
};

/* The request a hook is called for, read by the req table's __index. */
static const struct behav_ctx *cur;
static uint64_t cur_gen;
static struct proto_parts cur_parts;
static bool cur_parsed;

/* The last verdict table, kept referenced until the next call: the
 * strings a verdict points at live in it. */
static int last_verdict;
static union opt_val err_vals[BEHAV_ERR_NOPTS];
static char status_text[32];

static struct lua_behav *owner_of(const struct behav_ops *ops)
{
    return ops->script;
}

/* ---- the req table ------------------------------------------------------ */

struct req_ud {
    uint64_t gen; /* the call it belongs to: fields are read while it runs */
};

static void push_str(lua_State *L, struct proto_str s)
{
    if (s.n > 0)
        lua_pushlstring(L, s.p, s.n);
    else
        lua_pushnil(L);
}

/* The parts of the current request, read once from a copy of its first
 * PARTS_MAX bytes (the buffer is not rearranged for it). */
static const struct proto_parts *parts_now(void)
{
    static unsigned char copy[PARTS_MAX];

    if (!cur_parsed) {
        size_t n = cur->len < PARTS_MAX ? cur->len : PARTS_MAX;
        struct evbuffer_ptr at;
        memset(&cur_parts, 0, sizeof(cur_parts));
        if (cur->proto->parts != NULL &&
            evbuffer_ptr_set(cur->in, &at, cur->off, EVBUFFER_PTR_SET) == 0 &&
            evbuffer_copyout_from(cur->in, &at, copy, n) == (ev_ssize_t)n)
            cur->proto->parts(copy, n, cur->unit, &cur_parts);
        cur_parsed = true;
    }
    return &cur_parts;
}

/* Pushes field k of the current request, or nil. */
static void push_field(lua_State *L, const char *k)
{
    const struct proto_parts *pp;

    if (strcmp(k, "bytes") == 0) {
        size_t n = cur->len < BYTES_MAX ? cur->len : BYTES_MAX;
        luaL_Buffer b;
        struct evbuffer_ptr at;
        char *dst = luaL_buffinitsize(L, &b, n);
        evbuffer_ptr_set(cur->in, &at, cur->off, EVBUFFER_PTR_SET);
        evbuffer_copyout_from(cur->in, &at, dst, n);
        luaL_pushresultsize(&b, n);
    } else if (strcmp(k, "proto") == 0) {
        lua_pushstring(L, cur->proto->name);
    } else if (strcmp(k, "index") == 0) {
        lua_pushinteger(L, (lua_Integer)cur->index);
    } else if (strcmp(k, "conn") == 0) {
        lua_pushinteger(L, (lua_Integer)cur->conn);
    } else if (strcmp(k, "client") == 0) {
        lua_pushstring(L, cur->client);
    } else if (strcmp(k, "proxy") == 0) {
        lua_pushstring(L, cur->proxy);
    } else if (cur->reply) {
        lua_pushnil(L); /* a reply has bytes, not parts */
    } else if (cur->proto->script != NULL) {
        proto_lua_parsed(L, cur, k); /* what the protocol's parse() said */
    } else if (strcmp(k, "command") == 0 || strcmp(k, "verb") == 0) {
        push_str(L, parts_now()->command);
    } else if (strcmp(k, "key") == 0) {
        push_str(L, parts_now()->key);
    } else if (strcmp(k, "method") == 0) {
        push_str(L, parts_now()->method);
    } else if (strcmp(k, "path") == 0) {
        push_str(L, parts_now()->path);
    } else if (strcmp(k, "statement") == 0) {
        push_str(L, parts_now()->statement);
    } else if (strcmp(k, "args") == 0) {
        pp = parts_now();
        lua_createtable(L, (int)pp->nargs, 0);
        for (unsigned i = 0; i < pp->nargs; i++) {
            push_str(L, pp->args[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
    } else if (strcmp(k, "headers") == 0) {
        pp = parts_now();
        lua_createtable(L, 0, (int)pp->nheaders);
        for (unsigned i = 0; i < pp->nheaders; i++) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (size_t j = 0; j < pp->headers[i][0].n; j++) {
                char c = pp->headers[i][0].p[j];
                luaL_addchar(&b, c >= 'A' && c <= 'Z' ? (char)(c + 32) : c);
            }
            luaL_pushresult(&b);
            push_str(L, pp->headers[i][1]);
            lua_setfield(L, -3, lua_tostring(L, -2));
            lua_pop(L, 1);
        }
    } else {
        lua_pushnil(L);
    }
}

static const char *const req_fields[] = {
    "bytes", "proto", "index", "conn", "client", "proxy", "command", "verb",
    "key", "method", "path", "statement", "args", "headers", NULL,
};

/* The table of what the script set on req, and the fields read so far. */
static void push_cache(lua_State *L, int ud)
{
    if (lua_getiuservalue(L, ud, 1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 4);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, ud, 1);
    }
}

/* req[k]: what the script set, or the field of the request it belongs to
 * while its hook runs (made again at each read: nothing is allocated for
 * fields a script does not read). */
static int req_index(lua_State *L)
{
    struct req_ud *r = lua_touserdata(L, 1);

    if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, -2) != LUA_TNIL)
            return 1;
    }
    if (r->gen != cur_gen || cur == NULL || lua_type(L, 2) != LUA_TSTRING) {
        lua_pushnil(L);
        return 1;
    }
    push_field(L, lua_tostring(L, 2));
    return 1;
}

static int req_newindex(lua_State *L)
{
    push_cache(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, -3);
    return 0;
}

/* Pushes a new req for the current request. */
static void push_req(lua_State *L)
{
    static int meta; /* the metatable (a reference), made once */
    struct req_ud *r = lua_newuserdatauv(L, sizeof(*r), 1);

    r->gen = cur_gen;
    if (meta == 0) {
        lua_createtable(L, 0, 2);
        lua_pushcfunction(L, req_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, req_newindex);
        lua_setfield(L, -2, "__newindex");
        meta = script_ref();
    }
    script_push(meta);
    lua_setmetatable(L, -2);
}

/* Copies every field into req (at idx), so that it outlives the call;
 * what the script set stays. */
static void req_keep(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    push_cache(L, idx);
    for (int i = 0; req_fields[i] != NULL; i++) {
        if (lua_getfield(L, -1, req_fields[i]) == LUA_TNIL) {
            push_field(L, req_fields[i]);
            lua_setfield(L, -3, req_fields[i]);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (cur->proto->script != NULL)
        proto_lua_keep(L, cur, idx);
}

/* ---- state, options, verdicts ------------------------------------------- */

/* Pushes t[key], made an empty table when missing; t at idx. */
static void push_subtable(lua_State *L, int idx, const void *key)
{
    idx = lua_absindex(L, idx);
    if (lua_rawgetp(L, idx, key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, idx, key);
    }
}

static char proxies_key; /* registry[&proxies_key][proxy name][script] */

/* Pushes this script's table of the connection and of the proxy. */
static void push_state(lua_State *L, const struct lua_behav *lb,
                       const struct behav_ctx *ctx)
{
    if (*ctx->state == 0) {
        lua_newtable(L);
        *ctx->state = script_ref();
    }
    script_push(*ctx->state);
    push_subtable(L, -1, lb);
    lua_remove(L, -2);
    push_subtable(L, LUA_REGISTRYINDEX, &proxies_key);
    lua_getfield(L, -1, ctx->proxy);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, ctx->proxy);
    }
    push_subtable(L, -1, lb);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

/* Pushes b's options as a table, made once per instance (until
 * behav_inst_changed()). */
static void push_opts(lua_State *L, const struct lua_behav *lb,
                      struct behav_inst *b)
{
    const union opt_val *vals = b->vals;

    if (b->script != 0) {
        script_push(b->script);
        return;
    }
    lua_createtable(L, 0, OPT_MAX);
    for (int i = 0; lb->decls[i].name != NULL; i++) {
        switch (lb->decls[i].type) {
        case OPT_BOOL:
            lua_pushboolean(L, vals[i].b);
            break;
        case OPT_INT:
            lua_pushinteger(L, vals[i].i);
            break;
        case OPT_FLOAT:
            lua_pushnumber(L, vals[i].f);
            break;
        default:
            lua_pushstring(L, vals[i].s != NULL ? vals[i].s : "");
            break;
        }
        lua_setfield(L, -2, lb->decls[i].name);
    }
    lua_pushvalue(L, -1);
    b->script = script_ref();
}

/* Pushes t[k] without metamethods: what a verdict says is what its table
 * holds, so the strings read stay referenced by it. t is absolute. */
static int rawfield(lua_State *L, int t, const char *k)
{
    lua_pushstring(L, k);
    return lua_rawget(L, t);
}

static double ms_field(lua_State *L, int t, const char *k)
{
    double ms;

    rawfield(L, t, k);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return -1;
    }
    if (!lua_isnumber(L, -1))
        luaL_error(L, "verdict: %s must be a number of ms", k);
    ms = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(ms >= 0 && ms <= 86400e3))
        luaL_error(L, "verdict: %s must be 0 to 86400000 ms", k);
    return ms / 1000;
}

static bool flag_field(lua_State *L, int t, const char *k)
{
    bool b;

    rawfield(L, t, k);
    b = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return b;
}

static const char *str_field(lua_State *L, int t, const char *k, size_t *n)
{
    const char *s;

    rawfield(L, t, k);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "verdict: %s must be a string", k);
    s = lua_tolstring(L, -1, n);
    lua_pop(L, 1); /* still referenced by the table (raw: no __index) */
    return s;
}

/* Raises an error naming the first key of the table at t that is not in
 * keys (NULL-terminated): a typo in a verdict must not pass silently. */
static void check_keys(lua_State *L, int t, const char *const *keys,
                       const char *what)
{
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                       : "?";
        int i = 0;
        while (keys[i] != NULL && strcmp(keys[i], k) != 0)
            i++;
        if (keys[i] == NULL)
            luaL_error(L, "%s: unknown key '%s'", what, k);
        lua_pop(L, 1);
    }
}

/* The error options of vaurien.error{...}, in error's slots. */
static void read_error(lua_State *L, int t, struct behav_verdict *v)
{
    static const char *const keys[] = { "status", "message", "code",
                                        "sqlstate", "enhanced", NULL };

    check_keys(L, t, keys, "vaurien.error (status, message, code, sqlstate, "
                           "enhanced)");
    memset(err_vals, 0, sizeof(err_vals));
    err_vals[BEHAV_ERR_STATUS].s = (char *)"";
    err_vals[BEHAV_ERR_MESSAGE].s = (char *)"";
    err_vals[BEHAV_ERR_SQLSTATE].s = (char *)"";
    err_vals[BEHAV_ERR_ENHANCED].s = (char *)"";
    rawfield(L, t, "status");
    if (lua_type(L, -1) == LUA_TNUMBER) {
        snprintf(status_text, sizeof(status_text), "%lld",
                 (long long)lua_tointeger(L, -1));
        err_vals[BEHAV_ERR_STATUS].s = status_text;
    }
    lua_pop(L, 1);
    if (err_vals[BEHAV_ERR_STATUS].s[0] == '\0') {
        const char *s = str_field(L, t, "status", NULL);
        if (s != NULL)
            err_vals[BEHAV_ERR_STATUS].s = (char *)s;
    }
    {
        const char *s;
        if ((s = str_field(L, t, "message", NULL)) != NULL)
            err_vals[BEHAV_ERR_MESSAGE].s = (char *)s;
        if ((s = str_field(L, t, "sqlstate", NULL)) != NULL)
            err_vals[BEHAV_ERR_SQLSTATE].s = (char *)s;
        if ((s = str_field(L, t, "enhanced", NULL)) != NULL)
            err_vals[BEHAV_ERR_ENHANCED].s = (char *)s;
    }
    rawfield(L, t, "code");
    if (!lua_isnil(L, -1)) {
        lua_Integer c = lua_tointeger(L, -1);
        if (!lua_isinteger(L, -1) || c < 0 || c > 65535)
            luaL_error(L, "vaurien.error: code must be an integer 0-65535");
        err_vals[BEHAV_ERR_CODE].i = c;
    }
    lua_pop(L, 1);
    v->err = err_vals;
}

/* Reads the verdict table at t into v (which says "pass" on entry). */
static void read_verdict(lua_State *L, int t, struct behav_verdict *v)
{
    static const char *const keys[] = {
        "delay", "reply_delay", "error", "answer", "replace", "close",
        "drop", "corrupt", "reset", "hang", "abort", NULL,
    };
    double d;
    const char *s;
    size_t n = 0;

    if (lua_isnil(L, t))
        return;
    if (!lua_istable(L, t))
        luaL_error(L, "a hook must return a verdict table or nil, not %s",
                   luaL_typename(L, t));
    check_keys(L, t, keys, "verdict");
    if ((d = ms_field(L, t, "delay")) >= 0) {
        v->req = BEHAV_HOLD;
        v->req_delay = d;
    }
    if ((d = ms_field(L, t, "reply_delay")) >= 0) {
        v->rep = BEHAV_HOLD;
        v->rep_delay = d;
    }
    if (flag_field(L, t, "drop"))
        v->rep = BEHAV_DROP;
    if (flag_field(L, t, "corrupt"))
        v->rep = BEHAV_CORRUPT;
    rawfield(L, t, "error");
    if (lua_istable(L, -1)) {
        read_error(L, lua_gettop(L), v);
        v->req = BEHAV_ERROR;
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "verdict: error must be a table (vaurien.error{...})");
    }
    lua_pop(L, 1);
    if ((s = str_field(L, t, "answer", &n)) != NULL ||
        (s = str_field(L, t, "replace", &n)) != NULL) {
        v->forward = str_field(L, t, "answer", NULL) == NULL;
        v->req = BEHAV_ERROR;
        v->answer = s;
        v->answer_len = (uint32_t)n; /* n < SCRIPT_MEMORY */
        v->answer_close = flag_field(L, t, "close");
    } else if (flag_field(L, t, "close")) {
        v->req = BEHAV_CLOSE;
    }
    if (flag_field(L, t, "reset"))
        v->req = BEHAV_RESET;
    if (flag_field(L, t, "hang"))
        v->req = BEHAV_HANG;
    if (flag_field(L, t, "abort"))
        v->req = BEHAV_ABORT;
    if (v->req == BEHAV_ERROR && v->err == NULL && v->answer == NULL)
        v->err = err_vals;
}

/* Keeps the verdict table at the top referenced until the next call. */
static void keep_verdict(lua_State *L)
{
    script_unref(last_verdict);
    lua_pushvalue(L, -1);
    last_verdict = script_ref();
}

/* ---- the hooks ---------------------------------------------------------- */

struct call {
    struct lua_behav *lb;
    struct behav_inst *b;
    struct behav_verdict *v;
    int hook; /* reply: the request's reference */
};

/* Protected: runs the request hook and reads its verdict. */
static int do_request(lua_State *L)
{
    struct call *c = lua_touserdata(L, 1);
    struct lua_behav *lb = c->lb;
    int req;

    push_req(L);
    req = lua_gettop(L);
    if (lb->request > 0) {
        int n = 1;
        script_push(lb->request);
        lua_pushvalue(L, req);
        if (lb->request_args >= 2) {
            push_opts(L, lb, c->b);
            n = 2;
        }
        if (lb->request_args >= 3) {
            push_state(L, lb, cur);
            n = 4;
        }
        lua_call(L, n, 1);
        keep_verdict(L);
        read_verdict(L, lua_gettop(L), c->v);
        lua_pop(L, 1);
    }
    if (lb->reply > 0 && c->v->req != BEHAV_CLOSE &&
        c->v->req != BEHAV_RESET && c->v->req != BEHAV_HANG &&
        !(c->v->req == BEHAV_ERROR && !c->v->forward)) {
        /* the reply hook gets this req, these options, this state */
        req_keep(L, req);
        lua_createtable(L, 4, 0);
        lua_pushvalue(L, req);
        lua_rawseti(L, -2, 1);
        push_opts(L, lb, c->b);
        lua_rawseti(L, -2, 2);
        push_state(L, lb, cur);
        lua_rawseti(L, -3, 4);
        lua_rawseti(L, -2, 3);
        lua_pushlightuserdata(L, lb);
        lua_rawseti(L, -2, 5);
        c->hook = script_ref(); /* last: nothing can fail after it */
    }
    return 0;
}

static void begin_call(const struct behav_ctx *ctx)
{
    cur = ctx;
    cur_gen++;
    cur_parsed = false;
    script_set_rng(ctx != NULL ? ctx->rng : NULL);
}

static void end_call(void)
{
    cur = NULL;
    script_set_rng(NULL);
}

static void lua_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                       struct behav_verdict *v)
{
    struct lua_behav *lb = owner_of(b->ops);
    struct call c = { lb, b, v, 0 };
    lua_State *L = script_state();
    struct behav_verdict pass = *v;

    if (ctx == NULL || L == NULL)
        return;
    begin_call(ctx);
    lua_pushcfunction(L, do_request);
    lua_pushlightuserdata(L, &c);
    if (script_call(lb->who, 1, 0) < 0) {
        *v = pass; /* an error: dummy */
    } else {
        v->hook = c.hook;
    }
    end_call();
}

/* Protected: runs the reply hook of the request kept at c->hook. */
static int do_reply(lua_State *L)
{
    struct call *c = lua_touserdata(L, 1);
    struct lua_behav *lb;

    script_push(c->hook); /* 2: {req, opts, conn, proxy, owner} */
    lb = c->lb;
    if (lb->reply <= 0)
        return 0;
    script_push(lb->reply);
    push_req(L); /* rep */
    for (int i = 1; i <= 4; i++)
        lua_rawgeti(L, 2, i);
    lua_call(L, 5, 1);
    keep_verdict(L);
    read_verdict(L, lua_gettop(L), c->v);
    return 0;
}

void behav_lua_reply(int hook, const struct behav_ctx *ctx,
                     struct behav_verdict *v)
{
    struct call c = { NULL, NULL, v, hook };
    lua_State *L = script_state();
    struct behav_verdict pass;

    memset(v, 0, sizeof(*v));
    v->req = v->rep = BEHAV_PASS;
    pass = *v;
    if (hook <= 0 || L == NULL)
        return;
    script_push(hook);
    lua_rawgeti(L, -1, 5);
    c.lb = lua_touserdata(L, -1);
    lua_pop(L, 2);
    if (c.lb == NULL)
        return;
    begin_call(ctx);
    lua_pushcfunction(L, do_reply);
    lua_pushlightuserdata(L, &c);
    if (script_call(c.lb->who, 1, 0) < 0)
        *v = pass;
    end_call();
}

/* ---- loading ------------------------------------------------------------ */

/* What a load reads from the script's table, before it is applied. */
struct loaded {
    char *help;
    struct opt_decl decls[OPT_MAX + 1];
    int request, reply;
    int request_args, reply_args;
    char err[300];
};

/* The parameters the function at idx declares (all, 5, for varargs). */
static int params(lua_State *L, int idx)
{
    lua_Debug ar;

    if (!lua_isfunction(L, idx))
        return 0;
    lua_pushvalue(L, idx);
    lua_getinfo(L, ">u", &ar);
    return ar.isvararg ? 5 : ar.nparams;
}

static char *dup_field(lua_State *L, int t, const char *k, const char *def)
{
    const char *s;
    char *d;

    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) {
        s = def;
    } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
        s = lua_toboolean(L, -1) ? "true" : "false";
    } else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
        s = lua_tostring(L, -1);
    } else {
        luaL_error(L, "'%s' must be a string", k);
        return NULL;
    }
    d = strdup(s);
    lua_pop(L, 1);
    if (d == NULL)
        luaL_error(L, "out of memory");
    return d;
}

static void free_decls(struct opt_decl *d)
{
    for (int i = 0; d[i].name != NULL; i++) {
        free((char *)d[i].name);
        free((char *)d[i].def);
        free((char *)d[i].help);
    }
    memset(d, 0, sizeof(*d));
}

/* Protected: reads options and hooks from the table at 2 into the struct
 * loaded at 1. */
static int read_table(lua_State *L)
{
    struct loaded *ld = lua_touserdata(L, 1);
    int nopt;

    ld->help = dup_field(L, 2, "help", "A behavior written in Lua.");
    lua_getfield(L, 2, "options");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
        return luaL_error(L, "options must be a list of {name=, type=, "
                             "default=, help=}");
    nopt = lua_isnil(L, -1) ? 0 : (int)lua_rawlen(L, -1);
    if (nopt > OPT_MAX)
        return luaL_error(L, "at most %d options", OPT_MAX);
    for (int i = 0; i < nopt; i++) {
        struct opt_decl *d = &ld->decls[i];
        char *type;
        union opt_val v = { 0 };
        char why[300];
        int t;

        lua_rawgeti(L, 3, i + 1);
        t = lua_gettop(L);
        if (!lua_istable(L, t))
            return luaL_error(L, "option %d must be a table", i + 1);
        d->name = dup_field(L, t, "name", "");
        if (script_check_name("option", d->name, why, sizeof(why)) < 0)
            return luaL_error(L, "option %d: %s", i + 1, why);
        for (int j = 0; j < i; j++)
            if (strcmp(ld->decls[j].name, d->name) == 0)
                return luaL_error(L, "option '%s' declared twice", d->name);
        type = dup_field(L, t, "type", "str");
        d->type = OPT_STR;
        if (strcmp(type, "bool") == 0 || strcmp(type, "boolean") == 0)
            d->type = OPT_BOOL;
        else if (strcmp(type, "int") == 0 || strcmp(type, "integer") == 0)
            d->type = OPT_INT;
        else if (strcmp(type, "float") == 0 || strcmp(type, "number") == 0)
            d->type = OPT_FLOAT;
        else if (strcmp(type, "str") != 0 && strcmp(type, "string") != 0) {
            lua_pushfstring(L, "option '%s': type '%s' is not one of bool, "
                            "int, float, str", d->name, type);
            free(type);
            return lua_error(L);
        }
        free(type);
        d->def = dup_field(L, t, "default",
                           d->type == OPT_BOOL ? "false"
                           : d->type == OPT_STR ? "" : "0");
        d->help = dup_field(L, t, "help", "");
        lua_getfield(L, t, "min");
        d->min = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
        lua_getfield(L, t, "max");
        d->max = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : d->min;
        lua_pop(L, 2);
        if (opt_parse(d, d->def, &v, why, sizeof(why)) < 0)
            return luaL_error(L, "option '%s': default: %s", d->name, why);
        if (d->type == OPT_STR)
            free(v.s);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "request");
    lua_getfield(L, 2, "reply");
    if ((!lua_isnil(L, -2) && !lua_isfunction(L, -2)) ||
        (!lua_isnil(L, -1) && !lua_isfunction(L, -1)))
        return luaL_error(L, "request and reply must be functions");
    if (lua_isnil(L, -2) && lua_isnil(L, -1))
        return luaL_error(L, "the table has neither a request nor a reply "
                             "function");
    ld->reply_args = params(L, -1);
    ld->request_args = params(L, -2);
    ld->reply = script_ref();
    ld->request = script_ref();
    return 0;
}

/* Frees what a load read, when it is not applied. */
static void loaded_free(struct loaded *ld)
{
    free(ld->help);
    free_decls(ld->decls);
    script_unref(ld->request);
    script_unref(ld->reply);
}

/* Whether the new options keep the old names and types. */
static bool same_options(const struct opt_decl *a, const struct opt_decl *b)
{
    int i;

    for (i = 0; a[i].name != NULL && b[i].name != NULL; i++)
        if (strcmp(a[i].name, b[i].name) != 0 || a[i].type != b[i].type)
            return false;
    return a[i].name == NULL && b[i].name == NULL;
}

int behav_lua_load(const char *name, const char *source, size_t len,
                   const char *path, char *err, size_t errlen)
{
    struct loaded ld;
    struct lua_behav *lb;
    int i = behav_find(name), rc;

    memset(&ld, 0, sizeof(ld));
    if (script_check_name("behavior", name, err, errlen) < 0)
        return -EINVAL;
    lb = i >= 0 ? owner_of(behav_at(i)) : NULL;
    if (i >= 0 && lb == NULL) {
        snprintf(err, errlen, "'%s' is a built-in behavior; pick another "
                 "name", name);
        return -EEXIST;
    }
    if (lb == NULL && behav_count() >= BEHAV_MAX) {
        snprintf(err, errlen, "at most %d behaviors (built-in and custom)",
                 BEHAV_MAX);
        return -ENOSPC;
    }
    rc = script_load_table(name, source, len, path, read_table, &ld, err,
                           errlen);
    if (rc < 0) {
        loaded_free(&ld);
        return rc;
    }
    if (lb != NULL && !same_options(lb->decls, ld.decls)) {
        snprintf(err, errlen, "%s: the new script declares other options "
                 "(names or types) than the one in use; kept the old one "
                 "(restart to change its options)", name);
        loaded_free(&ld);
        return -EINVAL;
    }
    if (lb == NULL) {
        lb = calloc(1, sizeof(*lb));
        if (lb == NULL) {
            snprintf(err, errlen, "out of memory");
            loaded_free(&ld);
            return -ENOMEM;
        }
        snprintf(lb->name, sizeof(lb->name), "%s", name);
        snprintf(lb->who, sizeof(lb->who), "behavior %s", name);
        lb->ops.name = lb->name;
        lb->ops.opts = lb->decls;
        lb->ops.decide = lua_decide;
        lb->ops.script = lb;
        memcpy(lb->decls, ld.decls, sizeof(lb->decls));
        behav_register(&lb->ops);
    } else {
        /* same names and types: instances keep their values; defaults,
         * help and bounds are the new script's */
        free(lb->help);
        free_decls(lb->decls);
        memcpy(lb->decls, ld.decls, sizeof(lb->decls));
        script_unref(lb->request);
        script_unref(lb->reply);
    }
    lb->help = ld.help;
    lb->ops.help = lb->help;
    lb->request = ld.request;
    lb->reply = ld.reply;
    lb->request_args = ld.request_args;
    lb->reply_args = ld.reply_args;
    return 0;
}

int behav_lua_load_file(const char *name, const char *path, char *err,
                        size_t errlen)
{
    return script_load_file(behav_lua_load, name, path, err, errlen);
}

/* Protected: forgets the state of the proxy whose name is at 1. */
static int do_forget(lua_State *L)
{
    const char *name = lua_touserdata(L, 1);

    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &proxies_key) == LUA_TTABLE) {
        lua_pushstring(L, name);
        lua_pushnil(L);
        lua_rawset(L, -3);
    }
    return 0;
}

void behav_lua_proxy_gone(const char *proxy)
{
    lua_State *L = script_started() ? script_state() : NULL;

    if (L == NULL)
        return;
    lua_pushcfunction(L, do_forget);
    lua_pushlightuserdata(L, (void *)proxy);
    script_call("proxy state", 1, 0);
}

bool behav_is_custom(const struct behav_ops *ops)
{
    return ops->script != NULL;
}
