/* l_core.h: the Lua binding of the C core, module "evaluator.core": job bookkeeping, executors,
 * wire and JSON codecs, the CSV writer and MPI. Lua's evaluator module is a thin layer over it. */
#ifndef EVL_L_CORE_H
#define EVL_L_CORE_H

#include <mpi.h>
#include <lua.h>

int luaopen_evaluator_core(lua_State *L);

/* The MPI part, "evaluator.core".mpi (l_mpi.c). */
void l_mpi_push(lua_State *L);
/* The MPI_Comm of a communicator object at idx (raises if it is not one); MPI_COMM_WORLD for nil. */
MPI_Comm l_mpi_checkcomm(lua_State *L, int idx);

#endif
