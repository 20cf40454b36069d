/*
 * version: the release, the commit and the libraries (see version.h).
 * Only this file includes the header cmake/commit.cmake writes at each
 * build, so a new commit rebuilds one object.
 */
#include "core/version.h"

#include <string.h>

#include <event2/event.h>
#include <http_parser.h>
#include <jansson.h>
#include <lua.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

#include "vaurien_build.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* "NAME: BUILT", and " (running LOADED)" when the shared library loaded
 * is another version than the headers built against. */
static void print_lib(FILE *out, const char *name, const char *built,
                      const char *loaded)
{
    fprintf(out, "%s: %s", name, built);
    if (loaded != NULL && strcmp(loaded, built) != 0)
        fprintf(out, " (running %s)", loaded);
    fputc('\n', out);
}

void version_print(FILE *out, const char *suffix)
{
    unsigned long hp = http_parser_version();
    char hp_loaded[32];

    snprintf(hp_loaded, sizeof(hp_loaded), "%lu.%lu.%lu", (hp >> 16) & 255,
             (hp >> 8) & 255, hp & 255);
    fprintf(out, "vaurien %s%s\n", VAURIEN_VERSION, suffix);
    fprintf(out, "commit: %s\n", VAURIEN_COMMIT);
    print_lib(out, "libevent", EVENT__VERSION, event_get_version());
    print_lib(out, "openssl", OPENSSL_VERSION_STR,
              OpenSSL_version(OPENSSL_VERSION_STRING));
    /* Lua tells no release at run time (lua_version() is 504 for every
     * 5.4.x): the headers' only */
    print_lib(out, "lua", LUA_VERSION_MAJOR "." LUA_VERSION_MINOR
              "." LUA_VERSION_RELEASE, NULL);
    print_lib(out, "http_parser", STR(HTTP_PARSER_VERSION_MAJOR) "."
              STR(HTTP_PARSER_VERSION_MINOR) "." STR(HTTP_PARSER_VERSION_PATCH),
              hp_loaded);
    print_lib(out, "nghttp2", NGHTTP2_VERSION, nghttp2_version(0)->version_str);
    print_lib(out, "jansson", JANSSON_VERSION, jansson_version_str());
}
