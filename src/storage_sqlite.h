/* storage_sqlite.h: the SQLite file behind evaluator.SQLiteStorage, Lua module "evaluator.sqlite":
 * searches and their jobs (wire-encoded, so values come back exactly), shared by the processes of
 * one machine; jobs are written when submitted and again when finished, one transaction a call. */
#ifndef EVL_STORAGE_SQLITE_H
#define EVL_STORAGE_SQLITE_H

#include <lua.h>

/* The module table: open(path, busy_ms) -> a handle, and token() (storage_job.h).
 * A handle has create_search(), search_ids(), has_search(id), job_ids(search_id) (finished jobs,
 * by number), load(job_ids) -> {id = job}, submit(search_id, params_list, writer, claimed_ids)
 * -> first job number (nil when an element cannot be stored: the core then raises its own error),
 * store(search_id, jobs, writer), after(search_id, seq, writer) -> the other writers' finished
 * jobs after row seq and the last row seen, unfinished(search_id, writer) -> {id=, parameters=}
 * of jobs submitted by other writers and never finished, close(). Any failed step raises an
 * error naming the file and SQLite's reason, with no transaction left open. */
int luaopen_evaluator_sqlite(lua_State *L);

#endif
