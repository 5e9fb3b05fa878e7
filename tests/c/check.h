/* check.h: the C unit tests' harness: counted checks, a Lua state with a memory cap, file helpers.
 * Each test binary calls CHECK for every assertion and ends with check_summary(), which prints
 * "NAME: N passed, N failed" and returns the exit status. */
#ifndef EVL_CHECK_H
#define EVL_CHECK_H

#include <stddef.h>

#include <lua.h>

/* Count one check; on failure print file:line, the condition and the formatted detail. */
#define CHECK(cond, ...) check_one(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)
void check_one(int ok, const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Print the totals for the binary `name`; returns 0 when nothing failed, else 1. */
int check_summary(const char *name);

/* A fresh Lua state with the standard libraries whose allocator refuses to hold more than
 * check_mem_limit bytes (0: no limit), so tests can provoke memory errors. */
lua_State *check_lua(void);
extern size_t check_mem_limit;

/* Runs Lua source that returns one value and leaves it on the stack; a Lua error is a failed
 * check (and leaves nil). */
void check_dostring(lua_State *L, const char *src);

/* Runs f in protected mode on L with the light userdata arg; returns lua_pcall's status (the error,
 * if any, is popped). */
int check_pcall(lua_State *L, lua_CFunction f, void *arg);

/* A new empty directory under $TMPDIR (or /tmp); check_rmdir removes it and what it holds. */
char *check_tmpdir(void);
void check_rmdir(char *dir);

/* The whole content of the file at path (NUL-terminated, length in *len), or NULL; free() it. */
char *check_read_file(const char *path, size_t *len);
/* Write the text s to path (created or truncated, mode 0644); returns 0 or -1. */
int check_write_file(const char *path, const char *s);

#endif
