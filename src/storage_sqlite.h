/* storage_sqlite.h: the SQLite file behind evaluator.SQLiteStorage, Lua module "evaluator.sqlite":
 * searches and their jobs (wire-encoded, so values come back exactly), shared by the processes of
 * one machine. Job numbers are reserved in blocks; jobs submitted are written with the next
 * store, before its finished jobs, in one transaction, or, in a fast loop, in one journal entry
 * (storage_journal.h) folded into the file within FOLD_S. */
#ifndef EVL_STORAGE_SQLITE_H
#define EVL_STORAGE_SQLITE_H

#include <lua.h>

/* The module table: open(path, busy_ms) -> a handle (the journals of writers that died are
 * folded first), and token() (storage_job.h).
 * A handle has create_search(), search_ids(), has_search(id), job_ids(search_id) (finished jobs,
 * by number), load(job_ids) -> {id = job},
 * reserve(search_id, writer, count, resume_at, old_stop) -> the first of count job numbers no
 *   other process gets (they start at resume_at when no block was reserved since the writer's
 *   last, which ended at old_stop; -1: none),
 * store(search_id, jobs, writer, seq, batches, now) -> after(...)'s two values: batches (a list
 *   of {first, params_list, block_stop, claimed_ids}, or nil) stored as submitted, claimed ids
 *   (jobs listed by unfinished and submitted again) marked, then the finished jobs, in one
 *   transaction; or, when the stores come fast and now is not true, in one journal entry (and
 *   then an empty list and seq as given come back: the others' jobs are read at the fold),
 * waiting() -> whether the journal holds entries not folded into the file yet (reads fold them
 *   first: this handle's reads see its own jobs; other processes see them once folded),
 * release(search_id, stop, used): numbers used .. stop - 1 given back when no block was reserved
 *   since,
 * after(search_id, seq, writer) -> the other writers' finished jobs after row seq and the last row
 *   seen, unfinished(search_id, writer) -> {id=, parameters=} of jobs submitted by other writers
 *   and never finished, close().
 * Any failed step raises an error naming the file and SQLite's reason, with no transaction left
 * open. */
int luaopen_evaluator_sqlite(lua_State *L);

#endif
