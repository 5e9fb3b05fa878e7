/* storage_sqlite.h: the SQLite file behind evaluator.SQLiteStorage: searches and their finished
 * jobs (wire-encoded, so values come back exactly), shared by the processes of one machine. */
#ifndef EVL_STORAGE_SQLITE_H
#define EVL_STORAGE_SQLITE_H

#include <lua.h>

/* core.sqlite_open(path) -> a handle with create_search(), search_ids(), has_search(id),
 * job_ids(search_id), load(job_ids) -> {id = job}, store(search_id, jobs),
 * after(search_id, seq) -> jobs, last_seq. Errors name the file and SQLite's reason. */
int l_sqlite_open(lua_State *L);

#endif
