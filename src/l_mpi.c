/* l_mpi.c: evaluator.mpi: rank(), size(), wtime(), COMM_WORLD, and communicator objects with
 * rank(), size() and split(color, key), enough to give an evaluator a sub-communicator. */
#include <lauxlib.h>

#include "l_core.h"
#include "runtime.h"
#include "pool_mpi.h"

#define COMM_MT "evaluator.Comm"

typedef struct l_comm {
  MPI_Comm comm;
  int owned; /* made by split: freed with the object */
} l_comm;

MPI_Comm l_mpi_checkcomm(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return MPI_COMM_WORLD;
  l_comm *c = luaL_testudata(L, idx, COMM_MT);
  if (!c) luaL_error(L, "comm must be a communicator (evaluator.mpi.COMM_WORLD or comm:split(...)), got a %s",
                     luaL_typename(L, idx));
  if (c->comm == MPI_COMM_NULL) luaL_error(L, "comm is MPI_COMM_NULL (this rank was split out of it)");
  return c->comm;
}

static void push_comm(lua_State *L, MPI_Comm comm, int owned) {
  l_comm *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->comm = comm;
  c->owned = owned;
  luaL_setmetatable(L, COMM_MT);
}

static int comm_rank(lua_State *L) {
  int r;
  MPI_Comm_rank(l_mpi_checkcomm(L, 1), &r);
  lua_pushinteger(L, r);
  return 1;
}

static int comm_size(lua_State *L) {
  int s;
  MPI_Comm_size(l_mpi_checkcomm(L, 1), &s);
  lua_pushinteger(L, s);
  return 1;
}

/* Collective: every rank of the communicator calls it. A rank that passes a nil color gets nil. */
static int comm_split(lua_State *L) {
  if (runtime_of(L)->worker_link)
    return luaL_error(L, "comm:split is collective over MPI ranks and cannot run in a thread worker, which re-runs "
                         "the script: call it where only the root's thread goes (inside `if ev then`), or use the "
                         "process or mpicomm method");
  MPI_Comm parent = l_mpi_checkcomm(L, 1);
  int color = lua_isnil(L, 2) ? MPI_UNDEFINED : (int)luaL_checkinteger(L, 2);
  int key = (int)luaL_optinteger(L, 3, 0);
  MPI_Comm out;
  MPI_Comm_split(parent, color, key, &out);
  if (out == MPI_COMM_NULL) {
    lua_pushnil(L);
    return 1;
  }
  push_comm(L, out, 1);
  return 1;
}

static int comm_gc(lua_State *L) {
  l_comm *c = luaL_checkudata(L, 1, COMM_MT);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (c->owned && c->comm != MPI_COMM_NULL && !finalized) MPI_Comm_free(&c->comm);
  c->comm = MPI_COMM_NULL;
  return 0;
}

static int comm_tostring(lua_State *L) {
  l_comm *c = luaL_checkudata(L, 1, COMM_MT);
  if (c->comm == MPI_COMM_WORLD) lua_pushliteral(L, "Comm(COMM_WORLD)");
  else lua_pushfstring(L, "Comm(%p)", (void *)c);
  return 1;
}

static int mpi_rank(lua_State *L) {
  lua_pushinteger(L, pool_mpi_world_rank());
  return 1;
}

static int mpi_size(lua_State *L) {
  lua_pushinteger(L, pool_mpi_world_size());
  return 1;
}

static int mpi_wtime(lua_State *L) {
  lua_pushnumber(L, MPI_Wtime());
  return 1;
}

void l_mpi_push(lua_State *L) {
  static const luaL_Reg comm_methods[] = {{"rank", comm_rank}, {"size", comm_size}, {"split", comm_split}, {NULL, NULL}};
  if (luaL_newmetatable(L, COMM_MT)) {
    luaL_newlib(L, comm_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, comm_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, comm_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"rank", mpi_rank}, {"size", mpi_size}, {"wtime", mpi_wtime}, {NULL, NULL}};
  luaL_newlib(L, fns);
  push_comm(L, MPI_COMM_WORLD, 0);
  lua_setfield(L, -2, "COMM_WORLD");
}
