/* runtime.c: setting up a Lua state for evaluator-lua and running the user's script (see runtime.h).
 * The evaluator Lua modules are compiled into the binary (embedded.c), so an installed binary
 * finds them from any directory. */
#include "runtime.h"

#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>

#include "embedded.h"
#include "l_coroutine.h"
#include "l_modules.h"
#include "subprocess.h"

runtime_t *runtime_of(lua_State *L) { return *(runtime_t **)lua_getextraspace(L); }

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

int runtime_open(runtime_t *rt) {
  guard_init(&rt->guard, NULL);
  lua_State *L = lua_newstate(memcap_alloc, &rt->guard.mem);
  if (!L) return -1;
  rt->L = L;
  rt->guard.L = L;
  *(runtime_t **)lua_getextraspace(L) = rt;
  lua_atpanic(L, panic);
  luaL_openlibs(L);
  spawn_install(L);
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

static int saved_argc, saved_script;
static char **saved_argv;
static char worker_done; /* its address is the error value that unwinds a worker's script */

void runtime_save_args(int argc, char **argv, int script_index) {
  saved_argc = argc, saved_argv = argv, saved_script = script_index;
}

void runtime_set_args(runtime_t *rt) {
  lua_State *L = rt->L;
  lua_createtable(L, saved_argc - saved_script - 1, saved_script + 1);
  for (int i = 0; i < saved_argc; i++) {
    lua_pushstring(L, saved_argv[i]);
    lua_rawseti(L, -2, i - saved_script);
  }
  lua_setglobal(L, "arg");
}

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

int runtime_load(runtime_t *rt) { return luaL_loadfile(rt->L, rt->script); }

static int traceback(lua_State *L) {
  if (lua_touserdata(L, 1) == &worker_done) return 1;
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int runtime_run(runtime_t *rt) {
  lua_State *L = rt->L;
  int chunk = lua_gettop(L);
  lua_getglobal(L, "arg");
  int nargs = 0;
  if (lua_istable(L, -1)) {
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    nargs = n;
  }
  lua_remove(L, chunk + 1);
  lua_pushcfunction(L, traceback);
  lua_insert(L, chunk);
  int rc = lua_pcall(L, nargs, 0, chunk);
  lua_remove(L, chunk);
  if (rc != LUA_OK && lua_touserdata(L, -1) == &worker_done) {
    lua_sethook(L, NULL, 0, 0);
    lua_pop(L, 1);
    rc = LUA_OK;
  }
  return rc;
}
