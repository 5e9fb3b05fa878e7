/* main.c: the evaluator-lua command: the lua interpreter's options, MPI start and stop, one Lua
 * state per rank running the script, errors printed once, and exit codes. Every failure path ends
 * every rank: no rank is ever left waiting. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <mpi.h>
#include <lauxlib.h>

#include "buf.h"
#include "clock.h"
#include "departures.h"
#include "guard.h"
#include "sigint.h"
#include "pool_process.h"
#include "pool_thread.h"
#include "repl.h"
#include "runtime.h"
#include "subprocess.h"
#include "pool_mpi.h"
#include "version.h"
#include "watchdog.h"

/* Where `make install` put the documentation, if this binary is an installed one: PREFIX/bin's
 * sibling share/. Written into buf; empty when the binary runs from the build tree. */
static void installed_docs(char *buf, size_t len) {
  char exe[4096];
  buf[0] = '\0';
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash) return;
  *slash = '\0'; /* PREFIX/bin */
  slash = strrchr(exe, '/');
  if (!slash || strcmp(slash, "/bin") != 0) return;
  *slash = '\0';
  char probe[4200];
  int n1 = snprintf(probe, sizeof probe, "%.4000s/share/doc/evaluator-lua/API.md", exe);
  if (n1 < 0 || (size_t)n1 >= len || access(probe, R_OK) != 0) return;
  memcpy(buf, probe, (size_t)n1 - strlen("/API.md"));
  buf[n1 - strlen("/API.md")] = '\0';
}

static void usage(FILE *out) {
  char docs[4096];
  installed_docs(docs, sizeof docs);
  fprintf(out,
          "usage: mpirun -np N evaluator-lua [options] [script.lua [args...]]\n"
          "       evaluator-lua [options] [script.lua [args...]]   (one rank)\n"
          "\n"
          "Runs script.lua on every MPI rank with Lua %s, cjson and the evaluator module.\n"
          "Rank 0 drives the search; with the mpicomm method the other ranks run its jobs.\n"
          "\n"
          "options (those of the lua interpreter, applied on every rank, in this order):\n"
          "  -e stat    execute string 'stat'\n"
          "  -l mod     require library 'mod' into global 'mod'\n"
          "  -l g=mod   require library 'mod' into global 'g'\n"
          "  -i         enter interactive mode after the script (on rank 0 only)\n"
          "  -v         show the Lua and evaluator-lua versions (rank 0), then go on\n"
          "  -E         ignore environment variables (LUA_INIT, LUA_PATH, LUA_CPATH)\n"
          "  -W         turn warnings on\n"
          "  --         stop handling options\n"
          "  -          stop handling options and execute standard input (read on rank 0,\n"
          "             sent to every rank)\n"
          "  -h, --help     show this help and exit\n"
          "  --version      show the evaluator-lua version and exit\n"
          "\n"
          "The API: evaluator.create(run_function, method, method_kwargs).\n"
          "Documentation: man evaluator-lua; %s%s\n",
          LUA_VERSION_MAJOR "." LUA_VERSION_MINOR, docs[0] ? docs : "docs/API.md and README.md in the source tree",
          docs[0] ? "/API.md (the Lua API) and README.md" : "");
}

/* What the command line asks, as lua.c reads it. */
typedef struct cmdline {
  int script;  /* index of the script in argv; argc when there is none */
  int has_i, has_v, has_e;
} cmdline;

static void bad_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "evaluator-lua: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  usage(stderr);
  exit(1);
}

/* Only the options with no argument, whole: -E, -W, -i, -v. */
static int flag_option(const char *a, cmdline *c) {
  if (strchr("EWiv", a[1]) == NULL || a[2] != '\0') return 0;
  if (a[1] == 'i') c->has_i = c->has_v = 1; /* -i implies -v, as in lua.c */
  if (a[1] == 'v') c->has_v = 1;
  return 1;
}

/* The options before the script (lua.c's collectargs), or exits for --help, --version and bad ones. */
static cmdline parse_args(int argc, char **argv) {
  cmdline c = {argc, 0, 0, 0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || !strcmp(a, "-")) {
      c.script = i;
      return c;
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    } else if (!strcmp(a, "--version")) {
      printf("evaluator-lua %s (%s, Open MPI %d.%d.%d)\n", EVL_VERSION, LUA_RELEASE, OMPI_MAJOR_VERSION,
             OMPI_MINOR_VERSION, OMPI_RELEASE_VERSION);
      exit(0);
    } else if (!strcmp(a, "--")) {
      c.script = i + 1;
      return c;
    } else if (a[1] == 'e' || a[1] == 'l') {
      c.has_e |= a[1] == 'e';
      if (a[2] == '\0' && (++i >= argc || argv[i][0] == '-')) bad_usage("'%s' needs argument", a);
    } else if (!flag_option(a, &c)) {
      bad_usage("unrecognized option '%s'", a);
    }
  }
  return c;
}

/* -v: both versions, as lua -v prints Lua's. */
static void print_version(void) {
  printf("%s\nevaluator-lua %s (Open MPI %d.%d.%d)\n", LUA_COPYRIGHT, EVL_VERSION, OMPI_MAJOR_VERSION,
         OMPI_MINOR_VERSION, OMPI_RELEASE_VERSION);
  fflush(stdout);
}

/* `-`: rank 0 reads standard input (mpirun gives it only to rank 0) and sends it to every rank.
 * The text lives until exit: worker threads load it again. */
static void share_stdin_script(int rank) {
  buf_t text;
  buf_init(&text);
  long long len = 0;
  if (rank == 0) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) buf_add(&text, chunk, n);
    if (ferror(stdin)) {
      fprintf(stderr, "evaluator-lua: cannot read the script from standard input\n");
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    len = (long long)text.len;
  }
  int rc = MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  if (rank != 0) buf_reserve(&text, (size_t)len);
  for (long long off = 0; rc == MPI_SUCCESS && off < len; off += INT_MAX) {
    int n = len - off > INT_MAX ? INT_MAX : (int)(len - off);
    rc = MPI_Bcast(text.data + off, n, MPI_CHAR, 0, MPI_COMM_WORLD);
  }
  if (rc != MPI_SUCCESS) {
    fprintf(stderr, "evaluator-lua: rank %d: cannot receive the script from rank 0\n", rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  text.len = (size_t)len;
  runtime_set_stdin_script(text.data, text.len);
}

/* Every rank runs the options (-e, -l, ...) and loads the script, in lua.c's order; if any failed,
 * the lowest failing rank prints why and all exit 1. An mpicomm evaluator made by -e or -l would
 * wait here for ranks that wait for it: options are for modules and settings. */
static int load_everywhere(runtime_t *rt, const cmdline *c, int argc, int rank, int size) {
  int failed = runtime_prepare(rt) != LUA_OK || (c->script < argc && runtime_load(rt) != LUA_OK);
  int mine = failed ? rank : size, first;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first == size) return 0;
  if (rank == first) fprintf(stderr, "evaluator-lua: %s\n", lua_tostring(rt->L, -1));
  return -1;
}

/* Run what the script left open through evaluator's own close, so callbacks and waits happen. */
static int close_open_evaluators(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, "evaluator");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 3);
    return LUA_OK;
  }
  lua_getfield(L, -1, "_close_all");
  lua_remove(L, -2);
  lua_remove(L, -2);
  lua_remove(L, -2);
  return lua_pcall(L, 0, 0, 0);
}


/* Only the standard streams: fflush(NULL) waits on every FILE, one that a thread worker is reading
 * from a slow command included (exit's own flush does not wait). */
static void flush_std(void) {
  fflush(stdout);
  fflush(stderr);
}

/* Interrupted, every rank is on its way out: MPI_Finalize would wait for the others (seconds)
 * while mpirun kills whoever is not gone within one. The results are on disk already. */
static void leave_interrupted(int sig) {
  flush_std();
  /* mpirun kills every rank as soon as one exits non-zero: the ranks meet (for 2 s at most) and
   * then leave together, so each ends on its own with 128 + signal. */
  if (pool_mpi_world_size() > 1) {
    MPI_Request req;
    int done = 0;
    double until = clock_now() + 2.0;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    while (!done && clock_now() < until) {
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      if (!done) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
      }
    }
  }
  _exit(128 + sig);
}

/* "A lower rank reports an error" travels on MPI_COMM_WORLD with this tag: nothing else receives
 * there (every pool talks on a duplicate of its communicator), and a duplicate made for it would
 * cost every start a collective. */
enum { DIE_TAG = 77, DIE_WAIT_MS = 300 };

/* An error raised on several ranks at once (a mistake at the script's top level) is printed once,
 * by the lowest of them: each failing rank tells the ranks above it, and a rank above 0 prints only
 * if no lower rank told it so within DIE_WAIT_MS. */
static int lower_rank_reports(int rank, int size) {
  if (size < 2) return 0;
  for (int r = rank + 1; r < size; r++) {
    MPI_Request req;
    if (MPI_Isend(&rank, 1, MPI_INT, r, DIE_TAG, MPI_COMM_WORLD, &req) == MPI_SUCCESS) MPI_Request_free(&req);
  }
  if (rank == 0) return 0;
  double until = clock_now() + DIE_WAIT_MS / 1000.0;
  do {
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, DIE_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
    if (flag) return 1;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  } while (clock_now() < until);
  return 0;
}

/* The usual mistake on a worker rank: using the evaluator that create returned as nil there. */
static const char *nil_evaluator_hint(lua_State *L, const char *msg, int rank) {
  if (rank == 0 || runtime_of(L)->creates == 0 || !strstr(msg, "attempt to index a nil value")) return "";
  return "\n(hint: on the ranks that run jobs, evaluator.create returns nil once the root closes the "
         "evaluator; put the driver inside `if ev then ... end`)";
}

/* An uncaught error. Interrupted (Ctrl-C, SIGTERM), every rank got the signal: close what is open
 * (it cancels every job at once), so all ranks end cleanly. Otherwise MPI_Abort ends them all. */
static void die(lua_State *L, int rank, int size, const char *what) {
  const char *msg = lua_tostring(L, -1);
  if (!msg) msg = "(error object is not a string)";
  if (!lower_rank_reports(rank, size)) {
    int line = (int)strcspn(msg, "\n"); /* the hint goes under the message, above the traceback */
    if (size > 1) fprintf(stderr, "evaluator-lua: rank %d: %s%.*s%s%s\n", rank, what, line, msg, nil_evaluator_hint(L, msg, rank), msg + line);
    else fprintf(stderr, "evaluator-lua: %s%s\n", what, msg);
  }
  flush_std();
  int sig = sigint_pending();
  if (sig && close_open_evaluators(L) == LUA_OK) leave_interrupted(sig);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, sig ? 128 + sig : 1);
  exit(sig ? 128 + sig : 1);
}

/* `evaluator-lua plot ...`, `evaluator-lua export ...`: tools that read files, not a script run on
 * ranks. They run in one Lua state without MPI; the module evaluator.cli maps the name to a module. */
static int is_subcommand(const char *a) { return !strcmp(a, "plot") || !strcmp(a, "export"); }

static int run_subcommand(int argc, char **argv) {
  runtime_t rt = {0};
  rt.script = argv[1];
  if (runtime_open(&rt)) {
    fprintf(stderr, "evaluator-lua: cannot create a Lua state: out of memory\n");
    return 1;
  }
  runtime_save_args(argc, argv, 1);
  runtime_set_args(&rt);
  lua_State *L = rt.L;
  int rc = 1;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "evaluator.cli");
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    lua_getfield(L, -1, "main");
    for (int i = 1; i < argc; i++) lua_pushstring(L, argv[i]);
    if (lua_pcall(L, argc - 1, 1, 0) == LUA_OK) rc = (int)luaL_optinteger(L, -1, 0);
  }
  if (rc == 1 && lua_type(L, -1) == LUA_TSTRING) fprintf(stderr, "evaluator-lua %s: %s\n", argv[1], lua_tostring(L, -1));
  runtime_close(&rt);
  return rc;
}

int main(int argc, char **argv) {
  if (argc > 1 && is_subcommand(argv[1])) return run_subcommand(argc, argv);
  cmdline c = parse_args(argc, argv);
  /* No script and nothing else to do: lua reads a terminal interactively; a batch job that lost
   * its script name should fail, not wait on standard input (use `-` to read it). */
  if (c.script == argc && !c.has_e && !c.has_v) {
    if (!isatty(STDIN_FILENO)) {
      fprintf(stderr, "evaluator-lua: no script given (use - to read it from standard input)\n");
      usage(stderr);
      return 1;
    }
    c.has_i = c.has_v = 1;
  }
  /* Oversubscribed, Open MPI makes every empty MPI_Iprobe call sched_yield, which hands the core
   * away on the hot path (jobs started up to 7 ms late); the transport waits by spinning and
   * napping on its own. A user's own setting is kept. */
  setenv("OMPI_MCA_mpi_yield_when_idle", "0", 0);
  /* Naps are short (20 us to 2 ms): without this the kernel may stretch each by 50 us or more. */
  prctl(PR_SET_TIMERSLACK, 1UL);
  watchdog_start(); /* before MPI: forking after MPI_Init is fragile */
  int provided;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  pool_mpi_init_world();
  int rank = pool_mpi_world_rank(), size = pool_mpi_world_size();
  sigint_install();
  prctl(PR_SET_CHILD_SUBREAPER, 1); /* orphans of a killed job's commands come back here to be reaped */
  subprocess_init();

  runtime_save_args(argc, argv, c.script);
  if (runtime_script_is_stdin()) share_stdin_script(rank);
  runtime_t rt = {0};
  rt.script = c.script < argc ? argv[c.script] : "=(command line)";
  if (runtime_open(&rt)) {
    fprintf(stderr, "evaluator-lua: cannot create a Lua state: out of memory\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  runtime_set_args(&rt);
  if (c.has_v && rank == 0) print_version();
  if (load_everywhere(&rt, &c, argc, rank, size)) {
    runtime_close(&rt);
    MPI_Finalize();
    return 1;
  }
  if (c.script < argc && runtime_run(&rt) != LUA_OK) die(rt.L, rank, size, "");
  if (c.has_i && rank == 0) repl_run(rt.L);
  if (close_open_evaluators(rt.L) != LUA_OK) die(rt.L, rank, size, "while closing: ");
  int sig = sigint_pending();
  if (sig) leave_interrupted(sig);
  pool_thread_wait_all(); /* threads closed without waiting finish their job first, as ranks do */
  pool_process_wait_all();
  if ((sig = departures_announce_and_wait())) leave_interrupted(sig);
  runtime_close(&rt);
  flush_std();
  MPI_Finalize();
  return 0;
}
