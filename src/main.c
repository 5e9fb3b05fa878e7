/* main.c: the evaluator-lua command: options, MPI start and stop, one Lua state per rank running
 * the script, and exit codes. Every failure path ends every rank: no rank is ever left waiting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <mpi.h>
#include <lauxlib.h>

#include "clock.h"
#include "guard.h"
#include "sigint.h"
#include "pool_process.h"
#include "pool_thread.h"
#include "runtime.h"
#include "subprocess.h"
#include "pool_mpi.h"
#include "version.h"
#include "watchdog.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: mpirun -np N evaluator-lua [options] script.lua [args...]\n"
          "       evaluator-lua [options] script.lua [args...]   (one rank)\n"
          "\n"
          "Runs script.lua on every MPI rank with Lua %s, cjson and the evaluator module.\n"
          "Rank 0 drives the search; with the mpicomm method the other ranks run its jobs.\n"
          "\n"
          "options:\n"
          "  -h, --help     show this help and exit\n"
          "  -v, --version  show the version and exit\n"
          "  --             end of options\n"
          "\n"
          "The API: evaluator.create(run_function, method, method_kwargs); see the README.\n",
          LUA_VERSION_MAJOR "." LUA_VERSION_MINOR);
}

/* Index of the script in argv, or exits for --help, --version and bad options. */
static int parse_args(int argc, char **argv) {
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    } else if (!strcmp(a, "-v") || !strcmp(a, "--version")) {
      printf("evaluator-lua %s (%s, Open MPI %d.%d.%d)\n", EVL_VERSION, LUA_RELEASE, OMPI_MAJOR_VERSION,
             OMPI_MINOR_VERSION, OMPI_RELEASE_VERSION);
      exit(0);
    } else if (!strcmp(a, "--")) {
      i++;
      break;
    } else {
      fprintf(stderr, "evaluator-lua: unknown option '%s'\n", a);
      usage(stderr);
      exit(1);
    }
  }
  if (i >= argc) {
    fprintf(stderr, "evaluator-lua: no script given\n");
    usage(stderr);
    exit(1);
  }
  return i;
}

/* Every rank loads the script; if any failed, the lowest failing rank prints why and all exit 1. */
static int load_everywhere(runtime_t *rt, int rank, int size) {
  int failed = runtime_load(rt) != LUA_OK;
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


/* Interrupted, every rank is on its way out: MPI_Finalize would wait for the others (seconds)
 * while mpirun kills whoever is not gone within one. The results are on disk already. */
static void leave_interrupted(int sig) {
  fflush(NULL);
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

/* An uncaught error. Interrupted (Ctrl-C, SIGTERM), every rank got the signal: close what is open
 * (it cancels every job at once), so all ranks end cleanly. Otherwise MPI_Abort ends them all. */
static void die(lua_State *L, int rank, int size, const char *what) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "evaluator-lua: rank %d: %s%s\n", rank, what, msg ? msg : "(error object is not a string)");
  fflush(NULL);
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
  int script = parse_args(argc, argv);
  /* Oversubscribed, Open MPI makes every empty MPI_Iprobe call sched_yield, which hands the core
   * away on the hot path (jobs started up to 7 ms late); the transport waits by spinning and
   * napping on its own. A user's own setting is kept. */
  setenv("OMPI_MCA_mpi_yield_when_idle", "0", 0);
  /* Naps are short (20 us to 1 ms): without this the kernel may stretch each by 50 us or more. */
  prctl(PR_SET_TIMERSLACK, 1UL);
  watchdog_start(); /* before MPI: forking after MPI_Init is fragile */
  int provided;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  pool_mpi_init_world();
  int rank = pool_mpi_world_rank(), size = pool_mpi_world_size();
  sigint_install();
  prctl(PR_SET_CHILD_SUBREAPER, 1); /* orphans of a killed job's commands come back here to be reaped */
  subprocess_init();

  runtime_t rt = {0};
  rt.script = argv[script];
  if (runtime_open(&rt)) {
    fprintf(stderr, "evaluator-lua: cannot create a Lua state: out of memory\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  runtime_save_args(argc, argv, script);
  runtime_set_args(&rt);
  if (load_everywhere(&rt, rank, size)) {
    runtime_close(&rt);
    MPI_Finalize();
    return 1;
  }
  if (runtime_run(&rt) != LUA_OK) die(rt.L, rank, size, "");
  if (close_open_evaluators(rt.L) != LUA_OK) die(rt.L, rank, size, "while closing: ");
  int sig = sigint_pending();
  if (sig) leave_interrupted(sig);
  pool_mpi_script_done();
  pool_thread_wait_all(); /* threads closed without waiting finish their job first, as ranks do */
  pool_process_wait_all();
  runtime_close(&rt);
  fflush(NULL);
  MPI_Finalize();
  return 0;
}
