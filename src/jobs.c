/* jobs.c: slots for jobs in flight and the finished job table (see jobs.h). Slots are recycled
 * through a free list, so memory stays flat however many jobs a search runs. */
#include "jobs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "buf.h"

void jobs_init(jobs_t *J, double t0) {
  memset(J, 0, sizeof *J);
  J->free_head = UINT32_MAX;
  J->t0 = t0;
}

void jobs_free(jobs_t *J) {
  free(J->recs);
  J->recs = NULL;
  J->cap = 0;
}

uint32_t jobs_add(jobs_t *J, double now) {
  if (J->free_head == UINT32_MAX) {
    uint32_t old = J->cap, cap = old ? old * 2 : 256;
    J->recs = xrealloc(J->recs, cap * sizeof *J->recs);
    for (uint32_t i = cap; i-- > old;) {
      J->recs[i].next_free = J->free_head;
      J->recs[i].in_use = 0;
      J->free_head = i;
    }
    J->cap = cap;
  }
  uint32_t slot = J->free_head;
  job_rec *r = &J->recs[slot];
  J->free_head = r->next_free;
  r->n = J->next_n++;
  r->t_submit = now;
  r->in_use = 1;
  J->submitted++;
  J->in_flight++;
  return slot;
}

void jobs_release(jobs_t *J, uint32_t slot) {
  job_rec *r = &J->recs[slot];
  r->in_use = 0;
  r->next_free = J->free_head;
  J->free_head = slot;
  J->in_flight--;
  J->gathered++;
}

/* "<search_id>.<n>", without lua_pushfstring's generality: this is on every job's path. */
void jobs_push_id(lua_State *L, const char *search_id, uint64_t n) {
  char buf[160], digits[24];
  size_t len = strlen(search_id), k = 0;
  if (len > sizeof buf - 24) len = sizeof buf - 24;
  memcpy(buf, search_id, len);
  buf[len++] = '.';
  do digits[k++] = (char)('0' + n % 10); while ((n /= 10));
  while (k) buf[len++] = digits[--k];
  lua_pushlstring(L, buf, len);
}

static int is_finite_number(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TNUMBER && (lua_isinteger(L, idx) || isfinite(lua_tonumber(L, idx)));
}

/* A list of numbers: 1..n all numbers, n >= 1, nothing else. Returns n or 0. *finite says whether all are. */
static lua_Integer number_list(lua_State *L, int idx, int *finite) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  *finite = 1;
  if (n == 0) return 0;
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, idx, i);
    if (t != LUA_TNUMBER) n = 0;
    else if (!is_finite_number(L, -1)) *finite = 0;
    lua_pop(L, 1);
    if (!n) return 0;
  }
  lua_pushnil(L);
  int count = 0;
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
  }
  return count == n ? n : 0;
}

static const char *push_objective_value(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  int finite;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (is_finite_number(L, idx)) lua_pushvalue(L, idx);
      else lua_pushliteral(L, "F");
      return NULL;
    case LUA_TSTRING:
      lua_pushvalue(L, idx);
      return NULL;
    case LUA_TTABLE:
      if (number_list(L, idx, &finite)) {
        if (finite) lua_pushvalue(L, idx);
        else lua_pushliteral(L, "F");
        return NULL;
      }
      break;
    default: break;
  }
  lua_pushliteral(L, "F");
  return "the run function must return a number, an \"F...\" string, a list of numbers, or "
         "{ objective = ..., metadata = {...} }";
}

const char *jobs_push_objective(lua_State *L, int out_idx) {
  out_idx = lua_absindex(L, out_idx);
  if (lua_type(L, out_idx) == LUA_TTABLE && lua_getfield(L, out_idx, "objective") != LUA_TNIL) {
    const char *why = push_objective_value(L, -1);
    lua_remove(L, -2);
    return why;
  }
  if (lua_type(L, out_idx) == LUA_TTABLE) lua_pop(L, 1);
  return push_objective_value(L, out_idx);
}

static void set_time(lua_State *L, int meta, const char *key, double t) {
  lua_pushnumber(L, t);
  lua_setfield(L, meta, key);
}

static const char *status_objective(run_status st) {
  switch (st) {
    case RUN_TIMEOUT: return "F_TIMEOUT";
    case RUN_CANCELLED: return "F_CANCELLED";
    case RUN_MEMORY: return "F_MEMORY";
    case RUN_CRASHED: return "F_CRASHED";
    default: return "F";
  }
}

void jobs_finish(lua_State *L, const jobs_t *J, int job_idx, run_status st, int out_idx,
                 double t_submit, double t_start, double t_end, double t_gather, int rank) {
  job_idx = lua_absindex(L, job_idx);
  out_idx = lua_absindex(L, out_idx);
  luaL_checkstack(L, 8, NULL);
  lua_createtable(L, 0, 8);
  int meta = lua_gettop(L);
  const char *error = NULL;
  if (st == RUN_OK) {
    lua_pushvalue(L, out_idx);
    lua_setfield(L, job_idx, "output");
    /* User metadata first, so the runtime's own keys win a clash. */
    if (lua_type(L, out_idx) == LUA_TTABLE && lua_getfield(L, out_idx, "metadata") == LUA_TTABLE) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, meta);
      }
    }
    if (lua_type(L, out_idx) == LUA_TTABLE) lua_pop(L, 1);
    error = jobs_push_objective(L, out_idx);
  } else {
    lua_pushstring(L, status_objective(st));
    error = lua_tostring(L, out_idx);
  }
  lua_setfield(L, job_idx, "objective");
  if (error) {
    lua_pushstring(L, error);
    lua_setfield(L, meta, "error");
  }
  /* Remote clocks are corrected by an estimate: keep the four in order whatever it missed. */
  if (t_start < t_submit) t_end += t_submit - t_start, t_start = t_submit;
  if (t_end < t_start) t_end = t_start;
  if (t_gather < t_end) t_gather = t_end;
  set_time(L, meta, "timestamp_submit", t_submit - J->t0);
  set_time(L, meta, "timestamp_start", t_start - J->t0);
  set_time(L, meta, "timestamp_end", t_end - J->t0);
  set_time(L, meta, "timestamp_gather", t_gather - J->t0);
  lua_pushinteger(L, rank);
  lua_setfield(L, meta, "rank");
  lua_setfield(L, job_idx, "metadata");
  lua_pushstring(L, (st == RUN_TIMEOUT || st == RUN_CANCELLED) ? "CANCELLED" : "DONE");
  lua_setfield(L, job_idx, "status");
}
