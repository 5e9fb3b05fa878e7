/* runtime.c: setting up a Lua state for evaluator-lua and running the user's script (see runtime.h).
 * The evaluator Lua modules are compiled into the binary (embedded.c), so an installed binary
 * finds them from any directory. The interpreter options mean what they mean to lua5.4 (lua.c),
 * and every state applies them: every rank, and every worker thread that re-runs the script. */
#include "runtime.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>

#include "embedded.h"
#include "l_coroutine.h"
#include "l_modules.h"
#include "subprocess.h"
#include "traceback.h"

runtime_t *runtime_of(lua_State *L) { return *(runtime_t **)lua_getextraspace(L); }

const char *runtime_message(runtime_t *rt) {
  const char *msg = lua_tostring(rt->L, -1);
  return msg ? msg : "(error object is not a string)";
}

static int load_embedded(lua_State *L) {
  const embedded_module *m = lua_touserdata(L, lua_upvalueindex(1));
  if (luaL_loadbuffer(L, m->source, m->len, m->chunkname) != LUA_OK) return lua_error(L);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

static void preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const l_module *m = l_modules; m->name; m++) {
    lua_pushcfunction(L, m->open);
    lua_setfield(L, -2, m->name);
  }
  for (const embedded_module *m = embedded_modules; m->name; m++) {
    lua_pushlightuserdata(L, (void *)m);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
}

static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "evaluator-lua: unprotected Lua error: %s\n", msg ? msg : "(no message)");
  return 0;
}

/* lua_newstate leaves warnings with nowhere to go; this is lauxlib's behaviour (off until "@on",
 * which -W sends), kept per runtime since lauxlib's own is not public. A warning's parts are
 * gathered and written with one call, so lines from several ranks do not interleave. */
static void warn_print(void *ud, const char *msg, int tocont) {
  runtime_t *rt = ud;
  if (!rt->warn_cont && !tocont && *msg == '@') { /* a control message */
    if (!strcmp(msg, "@on")) rt->warn_on = 1;
    else if (!strcmp(msg, "@off")) rt->warn_on = 0;
    return;
  }
  rt->warn_cont = tocont;
  if (!rt->warn_on) return;
  size_t room = sizeof rt->warn_line - rt->warn_len, n = strlen(msg);
  if (n > room) n = room;
  memcpy(rt->warn_line + rt->warn_len, msg, n);
  rt->warn_len += n;
  if (tocont) return;
  fprintf(stderr, "Lua warning: %.*s\n", (int)rt->warn_len, rt->warn_line);
  fflush(stderr);
  rt->warn_len = 0;
}

static int saved_argc, saved_script;
static char **saved_argv;
static const char *stdin_text;
static size_t stdin_len;

/* Whether -E is among the options (lua.c: ignore LUA_INIT, LUA_PATH and LUA_CPATH). */
static int has_option_E(void) {
  for (int i = 1; i < saved_script && i < saved_argc; i++)
    if (!strcmp(saved_argv[i], "-E")) return 1;
  return 0;
}

int runtime_open(runtime_t *rt) {
  guard_init(&rt->guard, NULL);
  lua_State *L = lua_newstate(memcap_alloc, &rt->guard.mem);
  if (!L) return -1;
  rt->L = L;
  rt->guard.L = L;
  *(runtime_t **)lua_getextraspace(L) = rt;
  lua_atpanic(L, panic);
  rt->warn_on = rt->warn_cont = 0;
  rt->warn_len = 0;
  lua_setwarnf(L, warn_print, rt);
  if (has_option_E()) { /* read by the package library when it opens */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  subprocess_install(L);
  lco_install(L);
  preload(L);
  guard_attach(&rt->guard);
  return 0;
}

void runtime_close(runtime_t *rt) {
  if (!rt->L) return;
  lua_close(rt->L);
  guard_detach(&rt->guard);
  rt->L = NULL;
}

static char worker_done; /* its address is the error value that unwinds a worker's script */

void runtime_save_args(int argc, char **argv, int script_index) {
  saved_argc = argc, saved_argv = argv, saved_script = script_index;
}

void runtime_set_args(runtime_t *rt) {
  lua_State *L = rt->L;
  int script = saved_script == saved_argc ? 0 : saved_script; /* no script: arg[0] is the program */
  lua_createtable(L, saved_argc - script - 1 > 0 ? saved_argc - script - 1 : 0, script + 1);
  for (int i = 0; i < saved_argc; i++) {
    lua_pushstring(L, saved_argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

int runtime_script_is_stdin(void) {
  return saved_script < saved_argc && !strcmp(saved_argv[saved_script], "-") &&
         strcmp(saved_argv[saved_script - 1], "--") != 0;
}

void runtime_set_stdin_script(const char *text, size_t len) { stdin_text = text, stdin_len = len; }

/* Raised again at every instruction: a pcall in the script around create cannot keep the worker's
 * copy of the script going. */
static void worker_done_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_pushlightuserdata(L, &worker_done);
  lua_error(L);
}

int runtime_worker_done(lua_State *L) {
  lua_sethook(L, worker_done_hook, LUA_MASKCOUNT, 1);
  lua_pushlightuserdata(L, &worker_done);
  return lua_error(L);
}

int runtime_load(runtime_t *rt) {
  if (runtime_script_is_stdin()) {
    assert(stdin_text != NULL || stdin_len == 0);
    return luaL_loadbuffer(rt->L, stdin_text ? stdin_text : "", stdin_len, "=stdin");
  }
  return luaL_loadfile(rt->L, rt->script);
}

/* ---- tracebacks without the modules' frames ---- */

/* The user's frames: not a module's, and not a C function that a module called or that called the
 * script (the runtime's own pcall, at the bottom). */
static int user_frame(lua_State *L, int level, const lua_Debug *ar) {
  if (*ar->what != 'C') return !embedded_is_module_source(ar->source);
  lua_Debug caller;
  if (!lua_getstack(L, level + 1, &caller) || !lua_getinfo(L, "S", &caller)) return 0;
  return *caller.what == 'C' || !embedded_is_module_source(caller.source);
}

void runtime_push_traceback(lua_State *L, const char *msg, int level) {
  tb_push(L, msg, level, tb_levels(L), user_frame);
}

static int traceback(lua_State *L) {
  if (lua_touserdata(L, 1) == &worker_done) return 1;
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  runtime_push_traceback(L, msg, 1);
  return 1;
}

/* Call the function below nargs arguments on the stack under the traceback handler. */
static int call_traced(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  int rc = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return rc;
}

static int run_chunk(lua_State *L, int rc) { return rc == LUA_OK ? call_traced(L, 0, 0) : rc; }

/* -l name, -l g=mod (lua.c 5.4.6): g = require(mod); "-l mod-v2" sets the global mod. */
static int require_global(lua_State *L, const char *opt) {
  const char *eq = strchr(opt, '=');
  const char *mod = eq ? eq + 1 : opt;
  size_t glen = eq ? (size_t)(eq - opt) : strcspn(opt, "-");
  lua_getglobal(L, "require");
  lua_pushstring(L, mod);
  int rc = call_traced(L, 1, 1);
  if (rc != LUA_OK) return rc;
  lua_pushglobaltable(L);
  lua_pushlstring(L, opt, glen);
  lua_pushvalue(L, -3);
  lua_settable(L, -3); /* as lua_setglobal, with a name that is part of opt */
  lua_pop(L, 2);
  return LUA_OK;
}

/* LUA_INIT_5_4 (or LUA_INIT): "@file" runs the file, anything else is Lua code. */
static int run_lua_init(lua_State *L) {
  const char *name = "=LUA_INIT_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR;
  const char *init = getenv(name + 1);
  if (!init) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (!init) return LUA_OK;
  if (init[0] == '@') return run_chunk(L, luaL_loadfile(L, init + 1));
  return run_chunk(L, luaL_loadbuffer(L, init, strlen(init), name));
}

int runtime_prepare(runtime_t *rt) {
  lua_State *L = rt->L;
  rt->prepared = 1;
  if (!has_option_E()) {
    int rc = run_lua_init(L);
    if (rc != LUA_OK) return rc;
  }
  for (int i = 1; i < saved_script && i < saved_argc; i++) {
    const char *a = saved_argv[i];
    if (a[0] != '-' || (a[1] != 'e' && a[1] != 'l' && a[1] != 'W')) continue;
    if (a[1] == 'W') {
      lua_warning(L, "@on", 0);
      continue;
    }
    const char *val = a[2] ? a + 2 : saved_argv[++i];
    assert(val != NULL); /* main checked that -e and -l have their argument */
    int rc = a[1] == 'e' ? run_chunk(L, luaL_loadbuffer(L, val, strlen(val), "=(command line)"))
                         : require_global(L, val);
    if (rc != LUA_OK) return rc;
  }
  return LUA_OK;
}

int runtime_run(runtime_t *rt) {
  lua_State *L = rt->L;
  if (!rt->prepared) {
    int rc = runtime_prepare(rt);
    if (rc != LUA_OK) return rc;
  }
  int chunk = lua_gettop(L);
  lua_getglobal(L, "arg");
  int nargs = 0;
  if (lua_istable(L, -1)) {
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    nargs = n;
  }
  lua_remove(L, chunk + 1); /* the arg table */
  int rc = call_traced(L, nargs, 0);
  if (rc != LUA_OK && lua_touserdata(L, -1) == &worker_done) {
    lua_sethook(L, NULL, 0, 0);
    lua_pop(L, 1);
    rc = LUA_OK;
  }
  return rc;
}
