/* subprocess.c: os.execute and io.popen through posix_spawn with a new process group (see subprocess.h).
 * The wait is a poll on the child that also checks the job's guard, so a stopped job kills it. */
#include "subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>

#include "clock.h"
#include "guard.h"
#include "sigint.h"
#include "watchdog.h"

extern char **environ;

/* Children that os.execute or io.popen will wait for themselves. */
#define MAX_OWNED 1024
static pthread_mutex_t owned_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t owned[MAX_OWNED];
static atomic_int child_ended; /* set by SIGCHLD's handler, read by every thread: lock-free atomic */

/* With owned_lock held. */
static void own_locked(pid_t pid, int add) {
  for (int i = 0; i < MAX_OWNED; i++)
    if (owned[i] == (add ? 0 : pid)) {
      owned[i] = add ? pid : 0;
      break;
    }
}

static int is_owned_locked(pid_t pid) {
  for (int i = 0; i < MAX_OWNED; i++)
    if (owned[i] == pid) return 1;
  return 0;
}

static void disown(pid_t pid) {
  pthread_mutex_lock(&owned_lock);
  own_locked(pid, 0);
  pthread_mutex_unlock(&owned_lock);
}

void subprocess_own(pid_t pid, int owned_now) {
  pthread_mutex_lock(&owned_lock);
  own_locked(pid, owned_now);
  pthread_mutex_unlock(&owned_lock);
}

static void on_sigchld(int sig) {
  (void)sig;
  atomic_store(&child_ended, 1);
}

void subprocess_after_fork(void) {
  pthread_mutex_init(&owned_lock, NULL); /* another thread may have held it at the fork */
}

void subprocess_init(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, NULL);
}

void subprocess_reap_orphans(void) {
  if (!atomic_exchange(&child_ended, 0)) return;
  /* Under owned_lock: a command being spawned is registered before anyone can reap it. */
  pthread_mutex_lock(&owned_lock);
  for (;;) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    /* Peek first (WNOWAIT): a child someone waits for must keep its exit status. */
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0) break;
    if (is_owned_locked(si.si_pid)) {
      atomic_store(&child_ended, 1); /* try again later, once its owner has it */
      break;
    }
    waitpid(si.si_pid, NULL, WNOHANG);
  }
  pthread_mutex_unlock(&owned_lock);
}

typedef struct popen_stream {
  luaL_Stream s; /* first: the io library sees a luaL_Stream */
  pid_t pid;
} popen_stream;

/* Start /bin/sh -c cmd in a new process group with default signal dispositions. When pipe_fd >= 0
 * it becomes the child's child_fileno (stdin or stdout), and close_fd (the parent's end) is closed
 * in the child. Returns the pid or -1 (errno). */
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
  pthread_mutex_lock(&owned_lock);
  int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
  if (!rc) own_locked(pid, 1);
  pthread_mutex_unlock(&owned_lock);
  if (!rc) watchdog_add(pid); /* killed with the process, however the process ends */
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc) {
    errno = rc;
    return -1;
  }
  guard_t *g = guard_current();
  if (g && atomic_load(&g->running) && guard_add_group(g, pid) < 0) {
    /* A command the job could not stop would outlive it: refuse rather than lose track. */
    kill(-pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    disown(pid);
    errno = EAGAIN;
    return -1;
  }
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
      disown(pid);
      watchdog_remove(pid);
      if (g) guard_remove_group(g, pid);
      return r == pid ? status : -1;
    }
    if (!(g && atomic_load(&g->running)) && sigint_pending()) {
      kill(-pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
      disown(pid);
      return luaL_error(L, "interrupted");
    }
    if (g && atomic_load(&g->running)) {
      double now = clock_now();
      if (now - last_check > 0.02) {
        last_check = now;
        run_status why = guard_check(g);
        if (why) {
          /* guard_raise kills the group; the job's end reaps it (interrupt.c). */
          disown(pid);
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

/* Only the standard streams: fflush(NULL) would wait on every FILE, one that another thread is
 * reading from a slow command included. */
static void flush_std(void) {
  fflush(stdout);
  fflush(stderr);
}

/* Whether the command must be stopped now: the current job's stop (cancel, deadline, a message
 * from the root), or Ctrl-C outside a job. */
static int must_stop(void) {
  guard_t *g = guard_current();
  if (g && atomic_load(&g->running)) {
    run_status why = guard_check(g);
    if (!why) return 0;
    guard_cancel(g, why);
    guard_stop_now(g); /* kills the command; the hook raises as soon as Lua runs again */
    return 1;
  }
  return sigint_pending() != 0;
}

/* A pipe from a command read in slices, checking between them whether the job must stop: a read
 * blocked in the kernel cannot be stopped by a Lua hook, and no other thread may poll the job's
 * transport. A stopped read fails (EINTR), and the job is stopped at its next Lua instruction. */
static ssize_t reader_read(void *cookie, char *buf, size_t size) {
  int fd = (int)(intptr_t)cookie;
  for (;;) {
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, 20);
    if (r > 0) {
      ssize_t n = read(fd, buf, size);
      if (n >= 0 || errno != EINTR) return n;
    } else if (r < 0 && errno != EINTR) {
      return -1;
    }
    if (must_stop()) {
      errno = EINTR;
      return -1;
    }
  }
}

static int reader_close(void *cookie) { return close((int)(intptr_t)cookie); }

static FILE *open_reader(int fd) {
  cookie_io_functions_t io = {reader_read, NULL, NULL, reader_close};
  return fopencookie((void *)(intptr_t)fd, "r", io);
}

static int os_execute(lua_State *L) {
  const char *cmd = luaL_optstring(L, 1, NULL);
  if (!cmd) {
    lua_pushboolean(L, access("/bin/sh", X_OK) == 0);
    return 1;
  }
  flush_std(); /* as system() would see it: output written before the command comes first */
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
  flush_std();
  int child_end = reading ? fds[1] : fds[0], parent_end = reading ? fds[0] : fds[1];
  pid_t pid = spawn_shell(cmd, child_end, reading ? STDOUT_FILENO : STDIN_FILENO, parent_end);
  close(child_end);
  if (pid < 0) {
    int e = errno;
    close(parent_end);
    errno = e;
    return luaL_fileresult(L, 0, cmd);
  }
  p->s.f = reading ? open_reader(parent_end) : fdopen(parent_end, mode);
  p->pid = pid;
  p->s.closef = popen_close;
  return 1;
}

void subprocess_install(lua_State *L) {
  lua_getglobal(L, "os");
  lua_pushcfunction(L, os_execute);
  lua_setfield(L, -2, "execute");
  lua_pop(L, 1);
  lua_getglobal(L, "io");
  lua_pushcfunction(L, io_popen);
  lua_setfield(L, -2, "popen");
  lua_pop(L, 1);
}
