/* storage_job.h: what the SQLite and Redis storages share: a job's stored bytes (a record of
 * wire-encoded fields, with what cannot be encoded left out and named), reading them back, a
 * job's number from its id, and the random token that tells one evaluator's rows from another's. */
#ifndef EVL_STORAGE_JOB_H
#define EVL_STORAGE_JOB_H

#include <stdint.h>
#include <lua.h>

#include "buf.h"

/* Replace b's contents with the record of the job table at idx (storage_decode reads it back as
 * an equal table; args, when it is the parameters table, is written once). A field that cannot
 * be encoded (a serial run function may return anything) is left out and named in
 * metadata.storage_error.
 * Returns 0, or -1 when not even that can be encoded (err says why). Never raises. */
int storage_encode_job(lua_State *L, int idx, buf_t *b, char *err, size_t errlen);

enum { STORE_PARAMETERS, STORE_JOB };

/* Encode the n elements of the list at idx into b (parameter tables, or jobs as
 * storage_encode_job does), each after the len bytes of prefix (NULL: none); element i's bytes
 * end at ends[i], ends[0] = 0, and an element that cannot be stored is left empty. Returns how
 * many could not be. Storages encode before a transaction, so that encoding never holds a lock. */
lua_Integer storage_encode_list(lua_State *L, int idx, int kind, const char *prefix, size_t len, buf_t *b,
                                size_t *ends, lua_Integer n);

/* As storage_encode_list of a list of n parameter tables, from the list's encoding (the n bytes
 * at p: the core's, wire_put_list_head's list), without encoding anything. Returns 0, or -1 when
 * the bytes are not a list of n values (b and ends are then to be filled another way). */
int storage_split_list(const char *p, size_t len, lua_Integer n, const char *prefix, size_t plen, buf_t *b,
                       size_t *ends);

/* Work space of a storage's calls: encoded values and ids, and where each ends. One per handle,
 * reused by every call (nothing is allocated per call once it is large enough) and freed with the
 * handle, so that an error raised half-way leaks nothing. */
typedef struct storage_scratch {
  buf_t values, ids;
  size_t *ends, *id_ends; /* cap + 1 each */
  size_t cap;
} storage_scratch;

/* Empty s and make room for n elements. */
void storage_scratch_prepare(storage_scratch *s, lua_Integer n);
/* Free what s holds (it is then empty, ready for use again). */
void storage_scratch_free(storage_scratch *s);

/* Push the value stored in the n bytes at p: a job's record (storage_encode_job) or one wire
 * value (a parameters list; a job stored before records). Returns 0, or -1 (nothing pushed) when
 * the bytes are not exactly one of those: damaged data is an error, never a shorter table. */
int storage_decode(lua_State *L, const void *p, size_t n);

/* The job number n of an id "<search_id>.<n>"; -1 when the id does not end in ".<digits>". */
int64_t storage_job_number(const char *id, size_t len);

/* 16 random hex digits from /dev/urandom and a NUL into hex; 0, or -1 when it cannot be read. */
int storage_random_hex(char hex[17]);

/* token() -> 16 hex digits from /dev/urandom: the writer mark of one evaluator (a lua_CFunction). */
int storage_token(lua_State *L);

#endif
