/* runtime.h: one Lua state as evaluator-lua sets it up: the guarded allocator, the standard
 * libraries, cjson, the embedded evaluator modules, stoppable os.execute/io.popen, and running a script. */
#ifndef EVL_RUNTIME_H
#define EVL_RUNTIME_H

#include <lua.h>

#include "guard.h"

struct wlink;

typedef struct runtime {
  lua_State *L;
  guard_t guard;
  const char *script;      /* path as given */
  int creates;             /* evaluator.create calls so far in this state */
  /* A thread pool's worker re-running the script: at its serve_at-th create it serves jobs over
   * worker_link, then unwinds the script (runtime_worker_done). */
  struct wlink *worker_link;
  int serve_at, served;
} runtime_t;

/* A new state with everything loaded; returns 0, or -1 if no memory. */
int runtime_open(runtime_t *rt);
void runtime_close(runtime_t *rt);

/* Remember the command line (once, in main), then set the global `arg` in rt as lua.c does:
 * arg[0] = script, arg[1..] = its arguments, arg[-k] = what came before it. */
void runtime_save_args(int argc, char **argv, int script_index);
void runtime_set_args(runtime_t *rt);

/* Unwind a worker's script once it has served (raises a value runtime_run reports as LUA_OK). */
int runtime_worker_done(lua_State *L);

/* Load the script (LUA_OK, or an error with "file:line: message" on the stack). */
int runtime_load(runtime_t *rt);
/* Call the loaded chunk with its arguments under a traceback handler. Returns a lua status; on
 * error the message with its traceback is on the stack. */
int runtime_run(runtime_t *rt);

/* The runtime that owns L (stored in its extra space). */
runtime_t *runtime_of(lua_State *L);

#endif
