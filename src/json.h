/* json.h: JSON text for Lua values, both ways (convert_for_csv, decode, nested CSV cells).
 * No global state: safe to call from several threads, each with its own lua_State. */
#ifndef EVL_JSON_H
#define EVL_JSON_H

#include <stddef.h>

#include <lua.h>

#include "buf.h"

/* Deepest table nesting json_encode and json_decode accept; deeper input is an error, not a crash. */
#define JSON_MAX_DEPTH 1000

/* Append to out the JSON text of the value at stack index idx. Returns 0, or -1 with a message in
 * err naming the key path (e.g. `value at "a.b[2]" is a function: cannot encode`).
 * - nil and the light userdata NULL (json null inside a table: cjson.null, evaluator.null) -> null,
 *   booleans -> true/false, integers -> "%lld", floats -> fmt_double (numfmt.h), except
 *   NaN, inf and -inf -> NaN, Infinity, -Infinity as Python's json.dumps writes them.
 * - Strings: valid UTF-8 is copied as is; control bytes are escaped; a byte that is not part of valid
 *   UTF-8 becomes \u00XX of its value (lossy: it decodes back as U+00XX). A UTF-16 surrogate
 *   encoded in 3 bytes (what json_decode makes of a lone \uD800) is written back as \uD800.
 * - A table whose keys are exactly the integers 1..n is an array; the empty table is []; any other
 *   table is an object whose keys are sorted byte-wise by their text (numbers in their text form,
 *   booleans as "true"/"false"), so the output is deterministic. Keys 1 and "1" both appear, as
 *   Python's json.dumps would write them. Metatables are ignored (raw access).
 * - Errors: functions, userdata, threads as values or keys other than strings, numbers and booleans;
 *   a table that contains itself; nesting deeper than JSON_MAX_DEPTH.
 * Raises no Lua error except memory errors from the Lua API (out is freed first, so nothing leaks);
 * the stack is left as it was. */
int json_encode(lua_State *L, int idx, buf_t *out, char *err, size_t errlen);

/* Parse exactly one JSON value from s[0..len) (whitespace around it allowed) and push it, as
 * Python's json.loads reads it:
 * - Integers without '.', 'e' or 'E' that fit in int64 become Lua integers; other numbers (integers
 *   outside int64 included) floats; the tokens NaN, Infinity and -Infinity are accepted.
 * - Objects become tables with string keys, arrays sequences from 1.
 * - null at top level pushes nil; inside an array or object it is the light userdata NULL
 *   (cjson.null, evaluator.null), so [1,null,3] keeps its length and positions and {"a":null} its
 *   key, and json_encode writes them back as they were.
 * - Strings support every escape, \uXXXX surrogate pairs become UTF-8; a lone surrogate becomes its
 *   3-byte form, which json_encode turns back into the same escape.
 * Returns 0, or -1 with err like `invalid JSON at offset 12: expected ':'`, pushing nothing.
 * Raises no Lua error except memory errors from the Lua API, after freeing its scratch memory. */
int json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen);

#endif
