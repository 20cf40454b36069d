/*
 * script: the Lua state, its limits and the `vaurien` library (see
 * script.h). The hooks' own conventions live with their users:
 * behav/lua.c (behaviors) and proto/lua.c (protocols).
 */
#include "core/script.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "core/log.h"

static lua_State *L;
static size_t mem_used;
static long steps;            /* instructions left in this call, by 1000 */
static struct rng *call_rng;  /* NULL: rng_global */

#define HOOK_EVERY 1000

#define LOGGED_MAX 64 /* (script, message) pairs logged, most recent */
static uint64_t logged[LOGGED_MAX];
static unsigned nlogged;

/* The allocator: the whole state holds at most SCRIPT_MEMORY bytes; an
 * allocation past it fails, which Lua turns into an error of the call. */
static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (ptr == NULL)
        osize = 0;
    if (nsize == 0) {
        free(ptr);
        mem_used -= osize;
        return NULL;
    }
    if (nsize > osize && mem_used + (nsize - osize) > SCRIPT_MEMORY)
        return NULL;
    void *n = realloc(ptr, nsize);
    if (n != NULL)
        mem_used = mem_used - osize + nsize;
    return n;
}

static bool stopped; /* this call ran out of steps: it ends, whatever
                        the script catches */

static int stop(lua_State *l)
{
    stopped = true;
    return luaL_error(l, "stopped: ran more than %d instructions",
                      SCRIPT_STEPS);
}

static void count_hook(lua_State *l, lua_Debug *ar)
{
    (void)ar;
    if (--steps < 0 || stopped)
        stop(l);
}

/* pcall and xpcall, which cannot catch the end of the budget: once a call
 * is stopped, every protected call returns by raising it again. */
static int l_protected(lua_State *l)
{
    int n = lua_gettop(l);

    lua_pushvalue(l, lua_upvalueindex(1));
    lua_insert(l, 1);
    lua_call(l, n, LUA_MULTRET);
    if (stopped)
        return stop(l);
    return lua_gettop(l);
}

static struct rng *rng_now(void)
{
    return call_rng != NULL ? call_rng : &rng_global;
}

/* vaurien.random([m [, n]]), as math.random: a float in [0, 1), an
 * integer in [1, m] or in [m, n]; from the connection's generator. */
static int l_random(lua_State *l)
{
    lua_Integer lo = 1, hi;
    struct rng *r = rng_now();

    switch (lua_gettop(l)) {
    case 0:
        lua_pushnumber(l, rng_double(r));
        return 1;
    case 1:
        hi = luaL_checkinteger(l, 1);
        if (hi == 0) { /* as math.random(0): every bit random */
            lua_pushinteger(l, (lua_Integer)rng_next(r));
            return 1;
        }
        break;
    default:
        lo = luaL_checkinteger(l, 1);
        hi = luaL_checkinteger(l, 2);
        break;
    }
    luaL_argcheck(l, lo <= hi, lua_gettop(l), "interval is empty");
    lua_pushinteger(l, lo + (lua_Integer)rng_below(
                               r, (uint64_t)hi - (uint64_t)lo + 1 == 0
                                      ? UINT64_MAX
                                      : (uint64_t)hi - (uint64_t)lo + 1));
    return 1;
}

static int l_randomseed(lua_State *l)
{
    (void)l; /* the seed is --seed's: a script cannot change it */
    return 0;
}

static int l_log(lua_State *l)
{
    lua_Debug ar;
    const char *msg = luaL_checkstring(l, 1);

    if (lua_getstack(l, 1, &ar) && lua_getinfo(l, "Sl", &ar))
        log_info("%s:%d: %s", ar.short_src, ar.currentline, msg);
    else
        log_info("script: %s", msg);
    return 0;
}

/* Verdicts as tables, the spelling behav/lua.c reads. */
static int verdict(lua_State *l, const char *key, int value_at)
{
    lua_createtable(l, 0, 2);
    if (value_at > 0)
        lua_pushvalue(l, value_at);
    else
        lua_pushboolean(l, 1);
    lua_setfield(l, -2, key);
    return 1;
}

static int l_pass(lua_State *l)
{
    lua_createtable(l, 0, 0);
    return 1;
}

static int l_delay(lua_State *l)
{
    const char *where = luaL_optstring(l, 2, "request");

    luaL_checknumber(l, 1);
    if (strcmp(where, "request") != 0 && strcmp(where, "reply") != 0)
        return luaL_argerror(l, 2, "expected \"request\" or \"reply\"");
    return verdict(l, where[2] == 'q' ? "delay" : "reply_delay", 1);
}

static int l_error(lua_State *l)
{
    if (lua_isnoneornil(l, 1))
        lua_createtable(l, 0, 0);
    else
        luaL_checktype(l, 1, LUA_TTABLE);
    return verdict(l, "error", lua_isnoneornil(l, 1) ? lua_gettop(l) : 1);
}

/* vaurien.answer(bytes [, {close = true}]) and vaurien.replace(bytes) */
static int answer_like(lua_State *l, const char *key)
{
    luaL_checkstring(l, 1);
    verdict(l, key, 1);
    if (lua_istable(l, 2)) {
        lua_getfield(l, 2, "close");
        lua_setfield(l, -2, "close");
    }
    return 1;
}

static int l_answer(lua_State *l)
{
    return answer_like(l, "answer");
}

static int l_replace(lua_State *l)
{
    return answer_like(l, "replace");
}

#define FLAG_VERDICT(name) \
    static int l_##name(lua_State *l) { return verdict(l, #name, 0); }
FLAG_VERDICT(drop)
FLAG_VERDICT(close)
FLAG_VERDICT(reset)
FLAG_VERDICT(hang)
FLAG_VERDICT(abort)
FLAG_VERDICT(corrupt)

static const luaL_Reg vaurien_lib[] = {
    { "random", l_random }, { "log", l_log },       { "pass", l_pass },
    { "delay", l_delay },   { "error", l_error },   { "answer", l_answer },
    { "replace", l_replace }, { "drop", l_drop },   { "close", l_close },
    { "reset", l_reset },   { "hang", l_hang },     { "abort", l_abort },
    { "corrupt", l_corrupt }, { NULL, NULL },
};

/* load(chunk [, name [, mode [, env]]]) with mode "t" whatever is asked:
 * bytecode is not checked by Lua and could crash the process. */
static int l_load(lua_State *l)
{
    lua_settop(l, 4);
    lua_pushvalue(l, lua_upvalueindex(1));
    lua_insert(l, 1);
    lua_pushstring(l, "t");
    lua_replace(l, 4);
    lua_call(l, 4, LUA_MULTRET);
    return lua_gettop(l);
}

/* print(...) writes to the log (stdout may be a closed pipe). */
static int l_print(lua_State *l)
{
    luaL_Buffer b;
    int n = lua_gettop(l);

    luaL_buffinit(l, &b);
    for (int i = 1; i <= n; i++) {
        luaL_tolstring(l, i, NULL);
        luaL_addvalue(&b);
        if (i < n)
            luaL_addchar(&b, ' ');
    }
    luaL_pushresult(&b);
    log_info("script: %s", lua_tostring(l, -1));
    return 0;
}

/* Removes what could block, reach outside the process or load code that
 * is not source. */
static void sandbox(lua_State *l)
{
    static const char *const gone[] = { "dofile", "loadfile", "require",
                                        "collectgarbage", NULL };
    static const char *const os_kept[] = { "clock", "time", "date",
                                           "difftime", NULL };

    for (int i = 0; gone[i] != NULL; i++) {
        lua_pushnil(l);
        lua_setglobal(l, gone[i]);
    }
    lua_getglobal(l, "load");
    lua_pushcclosure(l, l_load, 1);
    lua_setglobal(l, "load");
    lua_getglobal(l, "pcall");
    lua_pushcclosure(l, l_protected, 1);
    lua_setglobal(l, "pcall");
    lua_getglobal(l, "xpcall");
    lua_pushcclosure(l, l_protected, 1);
    lua_setglobal(l, "xpcall");
    lua_pushcfunction(l, l_print);
    lua_setglobal(l, "print");
    lua_getglobal(l, "os");
    lua_createtable(l, 0, 4);
    for (int i = 0; os_kept[i] != NULL; i++) {
        lua_getfield(l, -2, os_kept[i]);
        lua_setfield(l, -2, os_kept[i]);
    }
    lua_setglobal(l, "os");
    lua_pop(l, 1);
    lua_getglobal(l, "math");
    lua_pushcfunction(l, l_random);
    lua_setfield(l, -2, "random");
    lua_pushcfunction(l, l_randomseed);
    lua_setfield(l, -2, "randomseed");
    lua_pop(l, 1);
    luaL_newlib(l, vaurien_lib);
    lua_setglobal(l, "vaurien");
}

lua_State *script_state(void)
{
    static const luaL_Reg libs[] = {
        { LUA_GNAME, luaopen_base },       { LUA_TABLIBNAME, luaopen_table },
        { LUA_STRLIBNAME, luaopen_string }, { LUA_MATHLIBNAME, luaopen_math },
        { LUA_UTF8LIBNAME, luaopen_utf8 }, { LUA_OSLIBNAME, luaopen_os },
        { NULL, NULL },
    };

    if (L != NULL)
        return L;
    L = lua_newstate(lua_alloc, NULL);
    if (L == NULL)
        return NULL;
    for (const luaL_Reg *lib = libs; lib->func != NULL; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    sandbox(L);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    return L;
}

void script_dir_of(const char *config, char *dir, size_t len)
{
    const char *slash = strrchr(config, '/');

    if (slash == NULL)
        snprintf(dir, len, "%s", "");
    else if (slash == config)
        snprintf(dir, len, "/");
    else
        snprintf(dir, len, "%.*s", (int)(slash - config), config);
}

void script_path(const char *dir, const char *file, char *out, size_t len)
{
    if (file[0] == '/' || dir[0] == '\0')
        snprintf(out, len, "%s", file);
    else
        snprintf(out, len, "%s/%s", dir, file);
}

bool script_started(void)
{
    return L != NULL;
}

char *script_read_file(const char *path, size_t *len, char *err,
                       size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(SCRIPT_SOURCE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n = fread(buf, 1, SCRIPT_SOURCE_MAX + 1, f);
    if (ferror(f) || n > SCRIPT_SOURCE_MAX) {
        snprintf(err, errlen, ferror(f) ? "cannot read %s" : "%s: larger "
                 "than %u bytes", path, SCRIPT_SOURCE_MAX);
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Runs what is on the stack (function, nargs arguments) with a fresh step
 * budget. Returns lua_pcall's status; an error message stays on top. */
static int run(int nargs, int nres)
{
    steps = SCRIPT_STEPS / HOOK_EVERY;
    stopped = false;
    return lua_pcall(L, nargs, nres, 0);
}

int script_load(const char *source, size_t len, const char *chunkname,
                char *err, size_t errlen)
{
    char name[300];

    if (script_state() == NULL) {
        snprintf(err, errlen, "Lua could not start: out of memory");
        return -ENOMEM;
    }
    /* "@file" keeps the end of a long path in messages, "=name" is as is */
    snprintf(name, sizeof(name), "%c%s", strchr(chunkname, '/') ? '@' : '=',
             chunkname);
    if (len > SCRIPT_SOURCE_MAX) {
        snprintf(err, errlen, "%s: larger than %u bytes", chunkname,
                 SCRIPT_SOURCE_MAX);
        return -EINVAL;
    }
    if (luaL_loadbufferx(L, source, len, name, "t") != LUA_OK ||
        run(0, 1) != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1) != NULL
                                        ? lua_tostring(L, -1)
                                        : "error without a message");
        lua_pop(L, 1);
        return -EINVAL;
    }
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "%s: the script must return a table (of "
                 "hooks), it returned %s", chunkname, luaL_typename(L, -1));
        lua_pop(L, 1);
        return -EINVAL;
    }
    return 0;
}

int script_check_name(const char *kind, const char *name, char *err,
                      size_t errlen)
{
    size_t n = strlen(name);
    bool ok = n > 0 && n <= SCRIPT_NAME_MAX;

    for (const char *p = name; ok && *p != '\0'; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
             *p == '_';
    if (ok)
        return 0;
    snprintf(err, errlen, "%s name '%.80s': lower case letters, digits and "
             "_, at most %d", kind, name, SCRIPT_NAME_MAX);
    return -EINVAL;
}

int script_load_table(const char *name, const char *source, size_t len,
                      const char *path, int (*read)(struct lua_State *),
                      void *ud, char *err, size_t errlen)
{
    int rc = script_load(source, len, path[0] != '\0' ? path : name, err,
                         errlen);

    if (rc < 0)
        return rc;
    lua_pushcfunction(L, read);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, ud);
    lua_insert(L, -2);
    if (run(2, 0) != LUA_OK) {
        snprintf(err, errlen, "%s: %s", name, lua_tostring(L, -1) != NULL
                                                  ? lua_tostring(L, -1)
                                                  : "error without a message");
        lua_pop(L, 1);
        return -EINVAL;
    }
    return 0;
}

int script_load_file(script_loader load, const char *name, const char *path,
                     char *err, size_t errlen)
{
    size_t len;
    char *src = script_read_file(path, &len, err, errlen);
    int rc;

    if (src == NULL)
        return -EINVAL;
    rc = load(name, src, len, path, err, errlen);
    free(src);
    return rc;
}

/* FNV-1a over who and the message: what was logged already. */
static bool logged_before(const char *who, const char *msg)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (const char *p = who; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
    for (const char *p = msg; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    for (unsigned i = 0; i < LOGGED_MAX && i < nlogged; i++)
        if (logged[i] == h)
            return true;
    logged[nlogged++ % LOGGED_MAX] = h;
    return false;
}

int script_call(const char *who, int nargs, int nres)
{
    if (run(nargs, nres) == LUA_OK)
        return 0;
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL)
        msg = "error without a message";
    if (!logged_before(who, msg))
        log_warn("%s: %s (logged once; the request "
                    "goes on as with dummy)", who, msg);
    lua_pop(L, 1);
    return -1;
}

int script_ref(void)
{
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

void script_push(int ref)
{
    if (ref > 0)
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    else
        lua_pushnil(L);
}

void script_unref(int ref)
{
    if (ref > 0 && L != NULL)
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
}

void script_set_rng(struct rng *r)
{
    call_rng = r;
}

size_t script_memory(void)
{
    return mem_used;
}
