/* runtime.h: one Lua state as evaluator-lua sets it up: the guarded allocator, the standard
 * libraries, cjson, the embedded evaluator modules, stoppable os.execute/io.popen, and running a script. */
#ifndef EVL_RUNTIME_H
#define EVL_RUNTIME_H

#include <lua.h>

#include "interrupt.h"

typedef struct runtime {
  lua_State *L;
  guard_t guard;
  const char *script;   /* path as given */
  int worker_mode;      /* a thread/process worker re-running the script (see pool_thread.c) */
} runtime_t;

/* A new state with everything loaded; returns 0, or -1 if no memory. */
int runtime_open(runtime_t *rt);
void runtime_close(runtime_t *rt);

/* Set the global `arg` as lua.c does: arg[0] = script, arg[1..] = its arguments, arg[-k] = what
 * came before it on the command line. */
void runtime_set_args(runtime_t *rt, int argc, char **argv, int script_index);

/* Load the script (LUA_OK, or an error with "file:line: message" on the stack). */
int runtime_load(runtime_t *rt);
/* Call the loaded chunk with its arguments under a traceback handler. Returns a lua status; on
 * error the message with its traceback is on the stack. */
int runtime_run(runtime_t *rt);

/* The runtime that owns L (stored in its extra space). */
runtime_t *runtime_of(lua_State *L);

#endif
