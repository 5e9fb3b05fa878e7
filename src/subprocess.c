/* subprocess.c: os.execute and io.popen through posix_spawn with a new process group (see subprocess.h).
 * The wait is a poll on the child that also checks the job's guard, so a stopped job kills it. */
#include "subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>

#include "interrupt.h"

extern char **environ;

typedef struct popen_stream {
  luaL_Stream s; /* first: the io library sees a luaL_Stream */
  pid_t pid;
} popen_stream;

/* Start /bin/sh -c cmd in a new process group with default signal dispositions. child_fd/parent
 * end: when pipe_fd >= 0 it becomes the child's stdin or stdout. Returns the pid or -1 (errno). */
static pid_t spawn_shell(const char *cmd, int pipe_fd, int child_fileno, int close_fd) {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_init(&fa);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (pipe_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, pipe_fd, child_fileno);
    posix_spawn_file_actions_addclose(&fa, pipe_fd);
    if (close_fd >= 0) posix_spawn_file_actions_addclose(&fa, close_fd);
  }
  char *argv[] = {"sh", "-c", (char *)cmd, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc) {
    errno = rc;
    return -1;
  }
  guard_t *g = guard_current();
  if (g && atomic_load(&g->running)) guard_add_group(g, pid);
  return pid;
}

/* Wait for pid, checking the current job's guard between polls. If the job must stop, the
 * group is killed and the stop error raised. Returns the wait status. */
static int wait_child(lua_State *L, pid_t pid) {
  guard_t *g = guard_current();
  long nap_ns = 50000;
  double last_check = 0;
  for (;;) {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) {
      if (g) guard_remove_group(g, pid);
      return r == pid ? status : -1;
    }
    if (!(g && atomic_load(&g->running)) && interrupt_pending()) {
      kill(-pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
      return luaL_error(L, "interrupted");
    }
    if (g && atomic_load(&g->running)) {
      double now = now_monotonic();
      if (now - last_check > 0.02) {
        last_check = now;
        run_status why = guard_check(g);
        if (why) {
          /* guard_raise kills the group; the job's end reaps it (interrupt.c). */
          guard_raise(L, g, why);
        }
      }
    }
    struct timespec ts = {0, nap_ns};
    nanosleep(&ts, NULL);
    if (nap_ns < 2000000) nap_ns *= 2;
  }
}

static int push_exec_result(lua_State *L, int status) {
  if (status < 0) return luaL_fileresult(L, 0, NULL);
  if (WIFSIGNALED(status)) {
    lua_pushnil(L);
    lua_pushliteral(L, "signal");
    lua_pushinteger(L, WTERMSIG(status));
    return 3;
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : status;
  if (code == 0) lua_pushboolean(L, 1);
  else lua_pushnil(L);
  lua_pushliteral(L, "exit");
  lua_pushinteger(L, code);
  return 3;
}

static int os_execute(lua_State *L) {
  const char *cmd = luaL_optstring(L, 1, NULL);
  if (!cmd) {
    lua_pushboolean(L, access("/bin/sh", X_OK) == 0);
    return 1;
  }
  fflush(NULL); /* as system() would see it: output written before the command comes first */
  pid_t pid = spawn_shell(cmd, -1, -1, -1);
  if (pid < 0) return luaL_fileresult(L, 0, cmd);
  return push_exec_result(L, wait_child(L, pid));
}

static int popen_close(lua_State *L) {
  popen_stream *p = (popen_stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  fclose(p->s.f);
  return push_exec_result(L, wait_child(L, p->pid));
}

static int io_popen(lua_State *L) {
  const char *cmd = luaL_checkstring(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  luaL_argcheck(L, (mode[0] == 'r' || mode[0] == 'w') && mode[1] == '\0', 2, "invalid mode");
  int reading = mode[0] == 'r';
  popen_stream *p = (popen_stream *)lua_newuserdatauv(L, sizeof(popen_stream), 0);
  p->s.closef = NULL; /* not yet a valid file */
  luaL_setmetatable(L, LUA_FILEHANDLE);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return luaL_fileresult(L, 0, cmd);
  fflush(NULL);
  int child_end = reading ? fds[1] : fds[0], parent_end = reading ? fds[0] : fds[1];
  pid_t pid = spawn_shell(cmd, child_end, reading ? STDOUT_FILENO : STDIN_FILENO, parent_end);
  close(child_end);
  if (pid < 0) {
    int e = errno;
    close(parent_end);
    errno = e;
    return luaL_fileresult(L, 0, cmd);
  }
  p->s.f = fdopen(parent_end, mode);
  p->pid = pid;
  p->s.closef = popen_close;
  return 1;
}

void spawn_install(lua_State *L) {
  lua_getglobal(L, "os");
  lua_pushcfunction(L, os_execute);
  lua_setfield(L, -2, "execute");
  lua_pop(L, 1);
  lua_getglobal(L, "io");
  lua_pushcfunction(L, io_popen);
  lua_setfield(L, -2, "popen");
  lua_pop(L, 1);
}
