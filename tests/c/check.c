/* check.c: the C unit tests' harness (see check.h). Single-threaded counters: tests that start
 * threads join them before checking. */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

static int passed, failed;
size_t check_mem_limit;
static size_t mem_used;

void check_one(int ok, const char *file, int line, const char *cond, const char *fmt, ...) {
  if (ok) {
    passed++;
    return;
  }
  failed++;
  fprintf(stderr, "%s:%d: check failed: %s: ", file, line, cond);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int check_summary(const char *name) {
  printf("%s: %d passed, %d failed\n", name, passed, failed);
  return failed ? 1 : 0;
}

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    mem_used -= old;
    return NULL;
  }
  if (check_mem_limit && nsize > old && mem_used + (nsize - old) > check_mem_limit) return NULL;
  void *p = realloc(ptr, nsize);
  if (p) mem_used = mem_used - old + nsize;
  return p;
}

lua_State *check_lua(void) {
  lua_State *L = lua_newstate(capped_alloc, NULL);
  if (!L) {
    fprintf(stderr, "check: cannot make a Lua state\n");
    exit(2);
  }
  luaL_openlibs(L);
  return L;
}

void check_dostring(lua_State *L, const char *src) {
  int ok = luaL_loadstring(L, src) == LUA_OK && lua_pcall(L, 0, 1, 0) == LUA_OK;
  CHECK(ok, "%s: %s", src, lua_tostring(L, -1));
  if (!ok) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

int check_pcall(lua_State *L, lua_CFunction f, void *arg) {
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, arg);
  int st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK) lua_pop(L, 1);
  return st;
}

char *check_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  char *dir = malloc(4096);
  if (!dir) exit(2);
  snprintf(dir, 4096, "%s/evl-unit.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(dir)) {
    fprintf(stderr, "check: mkdtemp %s: %s\n", dir, strerror(errno));
    exit(2);
  }
  return dir;
}

void check_rmdir(char *dir) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (strstr(dir, "/evl-unit.") && system(cmd) != 0) fprintf(stderr, "check: could not remove %s\n", dir);
  free(dir);
}

char *check_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *s = malloc(cap);
  for (size_t r; s && (r = fread(s + n, 1, cap - n - 1, f)) > 0;) {
    n += r;
    if (cap - n - 1 == 0) s = realloc(s, cap *= 2);
  }
  fclose(f);
  if (!s) return NULL;
  s[n] = '\0';
  if (len) *len = n;
  return s;
}

int check_write_file(const char *path, const char *s) {
  size_t n = strlen(s);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  int rc = write(fd, s, n) == (ssize_t)n ? 0 : -1;
  if (close(fd) < 0) rc = -1;
  return rc;
}
