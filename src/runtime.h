/* runtime.h: one Lua state as evaluator-lua sets it up: the guarded allocator, the standard
 * libraries, cjson, the embedded evaluator modules, stoppable os.execute/io.popen, the lua
 * interpreter's options (LUA_INIT, -E, -e, -l, -W) and running a script (a file or standard input). */
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
  int prepared;            /* LUA_INIT, -e, -l and -W have run in this state */
  int warn_on, warn_cont;  /* lua_warning state: -W or "@on"; inside a multi-part warning */
  char warn_line[512];     /* a warning's parts, written as one line (ranks share stderr) */
  size_t warn_len;
} runtime_t;

/* A new state with everything loaded; returns 0, or -1 if no memory. */
int runtime_open(runtime_t *rt);
void runtime_close(runtime_t *rt);

/* Remember the command line (once, in main, before any runtime_open), then set the global `arg` in
 * rt as lua.c does: arg[0] = script, arg[1..] = its arguments, arg[-k] = what came before it.
 * script_index is argc when there is no script (then arg[0] is the program, as in lua.c). The
 * options before script_index must be valid (main checks them): every state applies them. */
void runtime_save_args(int argc, char **argv, int script_index);

/* Whether the saved command line reads the script from standard input ("-", not after "--"). */
int runtime_script_is_stdin(void);
/* The script's text when it comes from standard input (read once by main; the runtime keeps the
 * pointer, which must live until the end of the program). */
void runtime_set_stdin_script(const char *text, size_t len);

/* Run what the interpreter options ask, in lua.c's order: LUA_INIT_5_4 or LUA_INIT (unless -E),
 * then each -e, -l and -W in command-line order. Returns a lua status; on error the message with
 * its traceback is on the stack. runtime_run does it first in a state that has not (a worker thread
 * re-running the script), so every state sees the same globals. */
int runtime_prepare(runtime_t *rt);
void runtime_set_args(runtime_t *rt);

/* Unwind a worker's script once it has served (raises a value runtime_run reports as LUA_OK). */
int runtime_worker_done(lua_State *L);

/* Load the script, from its file or from the standard input text (LUA_OK, or an error with
 * "file:line: message" on the stack). */
int runtime_load(runtime_t *rt);
/* Call the loaded chunk with its arguments under a traceback handler. Returns a lua status; on
 * error the message with its traceback is on the stack. */
int runtime_run(runtime_t *rt);

/* Push msg followed by the traceback of L's frames from `level` on, leaving out the evaluator
 * modules' own frames (and the C functions they call), so that the user's code comes first. Bounded
 * work on any stack depth (a message handler cannot be stopped). */
void runtime_push_traceback(lua_State *L, const char *msg, int level);

/* The message on top of rt's stack after runtime_load or runtime_run failed. */
const char *runtime_message(runtime_t *rt);

/* The runtime that owns L (stored in its extra space). */
runtime_t *runtime_of(lua_State *L);

#endif
