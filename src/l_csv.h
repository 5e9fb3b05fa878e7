/* l_csv.h: the Lua-facing functions that write results.csv from job tables and convert JSON text.
 * They are lua_CFunctions for the Lua module to register; they keep no state outside the lua_State. */
#ifndef EVL_L_CSV_H
#define EVL_L_CSV_H

#include <lua.h>

/* dump(path, jobs, flush): append one row per job to the CSV file at path (see csv_append).
 * Each job is a table with
 *   id         "<search_id>.<n>" (or an integer): the job_id column gets the integer after the last '.';
 *   parameters table name -> value: columns "p:<name>" (number names in their text form);
 *   objective  a number or a string such as "F_TIMEOUT" -> column "objective";
 *              a list of k numbers -> columns "objective_0".."objective_<k-1>"; nil -> empty;
 *   metadata   table key -> value: columns "m:<key>" for string keys not starting with "_".
 * Values are written as strings as-is, integers "%lld", floats fmt_double, booleans
 * "True"/"False" (as pandas writes them), tables as JSON text, JSON null (light userdata NULL) as an
 * empty cell. A value that cannot be written (a function, a cyclic table...) is written as
 * "<type>: <address>" with a warning on stderr naming the job and the key, so one bad job never
 * blocks the others. Raises a Lua error for a badly shaped job (no id, parameters not a table) or a
 * file that cannot be written. Returns nothing. */
int l_csv_dump(lua_State *L);

/* encode(value) -> JSON text (see json_encode); raises a Lua error when the value cannot be encoded. */
int l_json_encode(lua_State *L);

/* decode(text) -> value (see json_decode); raises "decode: <message>" on invalid JSON. */
int l_json_decode(lua_State *L);

#endif
