/* wire.h: the exact binary encoding of Lua values that crosses ranks, threads and processes.
 * Integers stay integers, floats keep every bit, strings are bytes, tables keep their shape. */
#ifndef EVL_WIRE_H
#define EVL_WIRE_H

#include <stdint.h>
#include <lua.h>

#include "buf.h"

/* Deepest nesting of tables the encoder, the decoder and wire_skip accept (the outermost table is
 * level 1): one limit, so a value one side accepts is never one the other refuses. */
#define WIRE_MAX_DEPTH 200
#define WIRE_MAX_DEPTH_TEXT "200"

/* Append the value at stack index idx to b. name is how the value is called in errors
 * ("parameters", "output"). Returns 0, or -1 with a message naming the offending key
 * ("parameters.opt.f is a function: only strings, numbers, booleans and tables can be sent"); a long
 * path keeps its ends: "parameters.deep.n.n…(195 more)…n is nested too deeply: ...".
 * The light userdata NULL (JSON null: cjson.null, evaluator.null) crosses as itself.
 * On error b may hold a partial value: callers truncate it back. Never raises. */
int wire_encode(lua_State *L, int idx, buf_t *b, const char *name, char *err, size_t errlen);

/* Append the value at idx to b, as wire_encode would, when it is nil, a boolean, a number or a
 * string under 4 GiB: 0. Anything else: -1, nothing appended (wire_encode it, for its error). For
 * a job's fields, on every stored job's path, where wire_encode's set-up cost more than the value. */
int wire_encode_scalar(lua_State *L, int idx, buf_t *b);

/* Append the head of a list of n values (a table of keys 1..n) as wire_encode writes it: the n
 * values must follow, each as wire_encode writes it. For a list whose values were encoded
 * already (a submit's parameters, for the storage). */
void wire_put_list_head(buf_t *b, uint32_t n);

/* Read at *p (not past end) the head wire_put_list_head writes, of a list of n values, and move
 * *p to its first value. Returns 0, or -1 when the bytes do not begin so. */
int wire_get_list_head(const char **p, const char *end, uint32_t n);

/* Push the value encoded at *p (not past end) and advance *p. Returns 0, or -1 on a malformed
 * buffer, pushing nothing. Raises only on Lua memory errors. */
int wire_decode(lua_State *L, const char **p, const char *end);

/* Step *p over one encoded value without decoding it. Returns 0, or -1 on a malformed buffer. */
int wire_skip(const char **p, const char *end);

/* Fixed-width fields of the message headers (host byte order: ranks of one job share an ABI). */
void wire_put_u32(buf_t *b, uint32_t v);
void wire_put_u64(buf_t *b, uint64_t v);
void wire_put_f64(buf_t *b, double v);
void wire_put_bytes(buf_t *b, const char *s, size_t n); /* u32 length, then the bytes */
/* Readers return 0, or -1 when the field would run past end. */
int wire_get_u32(const char **p, const char *end, uint32_t *v);
int wire_get_u64(const char **p, const char *end, uint64_t *v);
int wire_get_f64(const char **p, const char *end, double *v);
int wire_get_bytes(const char **p, const char *end, const char **s, size_t *n);

#endif
