/* repl.c: the read-eval-print loop of -i (see repl.h). Plain fgets, no readline: under mpirun the
 * standard input of rank 0 is a pipe from the launcher, not a terminal. */
#include "repl.h"

#include <stdio.h>
#include <string.h>
#include <lauxlib.h>

#include "runtime.h"

enum { REPL_MAXINPUT = 512 };

static const char *prompt(lua_State *L, int first) {
  const char *p = lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2") == LUA_TNIL ? NULL : lua_tostring(L, -1);
  if (!p) p = first ? "> " : ">> ";
  fputs(p, stdout);
  fflush(stdout);
  lua_pop(L, 1);
  return p;
}

/* One line without its newline pushed on the stack; 0 at end of input. */
static int read_line(lua_State *L, int first) {
  char buf[REPL_MAXINPUT];
  prompt(L, first);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int got = 0;
  while (fgets(buf, sizeof buf, stdin)) {
    got = 1;
    size_t n = strlen(buf);
    int whole = n > 0 && buf[n - 1] == '\n';
    luaL_addlstring(&b, buf, whole ? n - 1 : n);
    if (whole) break;
  }
  luaL_pushresult(&b);
  if (!got) lua_pop(L, 1);
  return got;
}

/* Whether a syntax error says the statement is only incomplete (it ends at <eof>). */
static int incomplete(lua_State *L, int status) {
  static const char mark[] = "<eof>";
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  return status == LUA_ERRSYNTAX && len >= sizeof mark - 1 && !strcmp(msg + len - (sizeof mark - 1), mark);
}

/* Compile the line on the stack as "return line" (an expression) or as statements, reading more
 * lines while it is incomplete. Leaves the chunk (or an error message) instead of the line. */
static int compile(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *ret = lua_pushfstring(L, "return %s", line);
  if (luaL_loadbuffer(L, ret, strlen(ret), "=stdin") == LUA_OK) {
    lua_remove(L, -2); /* the "return" text */
    lua_remove(L, -2); /* the line */
    return LUA_OK;
  }
  lua_pop(L, 2);
  for (;;) {
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    int status = luaL_loadbuffer(L, text, len, "=stdin");
    if (!incomplete(L, status)) {
      lua_remove(L, -2);
      return status;
    }
    lua_pop(L, 1);
    if (!read_line(L, 0)) return status; /* end of input inside a statement: drop it */
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

static void report(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "evaluator-lua: %s\n", msg ? msg : "(error object is not a string)");
  fflush(stderr);
  lua_pop(L, 1);
}

static int message_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  runtime_push_traceback(L, msg, 1);
  return 1;
}

void repl_run(lua_State *L) {
  int base = lua_gettop(L);
  while (read_line(L, 1)) {
    if (compile(L) != LUA_OK) {
      if (lua_gettop(L) > base) report(L);
      continue;
    }
    lua_pushcfunction(L, message_handler);
    lua_insert(L, base + 1);
    int status = lua_pcall(L, 0, LUA_MULTRET, base + 1);
    lua_remove(L, base + 1);
    if (status != LUA_OK) {
      report(L);
      continue;
    }
    int n = lua_gettop(L) - base;
    if (n > 0) { /* print the values, as lua does */
      luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
      lua_getglobal(L, "print");
      lua_insert(L, base + 1);
      if (lua_pcall(L, n, 0, 0) != LUA_OK) report(L);
    }
    lua_settop(L, base);
  }
  fputc('\n', stdout);
  fflush(stdout);
  lua_settop(L, base);
}
