/*
 * script: the Lua 5.4 state custom behaviors and protocols run in.
 *
 *   --behavior-file / --protocol-file / POST /behaviors
 *        └─▶ script_load() ──▶ a table of hooks (behav/lua.c, proto/lua.c)
 *   request, reply ──▶ script_call() ──▶ a verdict or a length
 *
 * One state per process (one event loop). Scripts never block and never
 * touch a socket: the standard library is trimmed to what computes (no io,
 * os but its clocks, no require, no loading of files or bytecode). A call
 * runs at most SCRIPT_STEPS instructions and the state holds at most
 * SCRIPT_MEMORY bytes: past either, the call fails with an error, which
 * is logged once per (script, message), and the caller goes on as if the
 * script had said nothing (pass, or: not this protocol).
 *
 * math.random and vaurien.random draw from the generator of the call
 * (the connection's, set by script_set_rng()), so --seed replays them.
 */
#ifndef VAURIEN_SCRIPT_H
#define VAURIEN_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/rng.h"

#define SCRIPT_STEPS 1000000       /* instructions per call */
#define SCRIPT_MEMORY (64u << 20)  /* bytes of the whole state */
#define SCRIPT_SOURCE_MAX (1u << 20) /* bytes of one script's source */

struct lua_State;

/* The state, made on first use. NULL only when Lua could not start
 * (out of memory). */
struct lua_State *script_state(void);

/* Whether the state was made (a script was ever loaded). */
bool script_started(void);

/* The folder of a config file ("" for the current one, "/" for the
 * root): the scripts it names relatively are there. */
void script_dir_of(const char *config, char *dir, size_t len);
/* file, relative to dir unless it is absolute. */
void script_path(const char *dir, const char *file, char *out, size_t len);

/* Reads a script file into a new NUL-terminated buffer (the caller frees
 * it). Returns NULL with a message in err. */
char *script_read_file(const char *path, size_t *len, char *err,
                       size_t errlen);

/* Runs source (chunkname names it in messages) and leaves the table it
 * returns on the stack. Returns 0, or -EINVAL with the message in err
 * (nothing left on the stack). */
int script_load(const char *source, size_t len, const char *chunkname,
                char *err, size_t errlen);

#define SCRIPT_NAME_MAX 63 /* bytes of a custom behavior's or protocol's name */

/* Checks the name of a custom behavior or protocol (kind: "behavior"):
 * lower case letters, digits and _, at most SCRIPT_NAME_MAX bytes. Returns
 * 0, or -EINVAL with a message in err. */
int script_check_name(const char *kind, const char *name, char *err,
                      size_t errlen);

/* Loads source (path names its file, "" for none) and hands the table it
 * returns to read(), run protected with ud at index 1 and the table at 2.
 * Returns 0, or -EINVAL with "name: why" in err (read's error included). */
int script_load_table(const char *name, const char *source, size_t len,
                      const char *path, int (*read)(struct lua_State *),
                      void *ud, char *err, size_t errlen);

/* Reads the file path and passes its source to load(). */
typedef int (*script_loader)(const char *name, const char *source, size_t len,
                             const char *path, char *err, size_t errlen);
int script_load_file(script_loader load, const char *name, const char *path,
                     char *err, size_t errlen);

/* Calls the function under nargs arguments on the stack with the step
 * budget; leaves nres results. On an error it logs once for (who,
 * message), leaves nothing, and returns -1. */
int script_call(const char *who, int nargs, int nres);

/* Pops the top of the stack into the registry. Returns its reference
 * (> 0), or 0 for nil. */
int script_ref(void);
/* Pushes a reference's value (nil for 0). */
void script_push(int ref);
/* Frees a reference (0 is none). */
void script_unref(int ref);

/* The generator math.random and vaurien.random draw from until the next
 * call; NULL: the process's. */
void script_set_rng(struct rng *r);

/* Bytes the state holds now. */
size_t script_memory(void);

#endif
