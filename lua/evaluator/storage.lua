-- evaluator.storage: where jobs are kept so that other evaluators, later runs and
-- `evaluator-lua export` can see them. MemoryStorage lives in this process, SQLiteStorage in a file
-- (evaluator.sqlite), RedisStorage on a server (evaluator.redis); an evaluator given none keeps
-- nothing (nobody could look).
--
-- What an evaluator asks of a storage (private methods, the same for the three):
--   _reserve(search_id, count, list, writer) -> the first of count job numbers no one else gets
--   _submitted(search_id, first, list, writer, encoded) the core took them: they are stored as
--       submitted (parameters from list, encoded: the list as the core encoded it, wire.h's
--       encoding), and those whose parameters tables came from _unfinished are
--       marked resubmitted, all at once, at the latest with the next _store_jobs (_unreserve(first,
--       count, writer) instead when the core refused them)
--   _has_pending(writer), _flush(search_id, writer) jobs not in the database yet (submitted ones
--       waiting for a write, a journal's); write them now
--   _release(search_id, writer)              at close: write what waits, give back unused numbers
--   _store_jobs(search_id, jobs, writer)     finished jobs (after the submitted ones), all at once
--   _other_jobs(ev)        finished jobs of other writers that ev has not been given yet
--   _unfinished(search_id, writer) -> {id =, parameters =} submitted by other writers, never finished
-- writer is a random token per evaluator: it tells an evaluator's own jobs from the others'.
local core = require "evaluator.core"
local sqlite = require "evaluator.sqlite"
local redis = require "evaluator.redis"

local M = {}

local STORAGES = "evaluator.MemoryStorage(), evaluator.SQLiteStorage(path) or evaluator.RedisStorage{ host =, port = }"

local function no_search(search_id)
  error(("storage holds no search '%s'"):format(tostring(search_id)), 0)
end

-- Jobs listed by _unfinished, by their parameters table: submitting that table again marks them.
local function claims_of(self, list)
  local claims = {}
  for _, p in ipairs(list) do claims[#claims + 1] = self._resubmit[p] end
  return claims
end

local function forget_claims(self, list)
  for _, p in ipairs(list) do self._resubmit[p] = nil end
end

local function remember_unfinished(self, jobs)
  for _, job in ipairs(jobs) do self._resubmit[job.parameters] = job.id end
  return jobs
end

---------------------------------------------------------------------------------------------------
-- MemoryStorage

local MemoryStorage = { __name = "MemoryStorage" }
MemoryStorage.__index = MemoryStorage

--- evaluator.MemoryStorage(): searches and their jobs in this process's memory.
function M.MemoryStorage()
  return setmetatable({ _searches = {}, _order = {}, _next = 0, _resubmit = setmetatable({}, { __mode = "k" }) },
    MemoryStorage)
end

function MemoryStorage:create_new_search()
  local id = tostring(self._next)
  self._next = self._next + 1
  -- ids/writers: finished jobs in the order they were stored; sub: submitted, not finished
  self._searches[id] = { ids = {}, writers = {}, jobs = {}, sub = {}, next_n = 0 }
  self._order[#self._order + 1] = id
  return id
end

function MemoryStorage:load_all_search_ids()
  return table.move(self._order, 1, #self._order, 1, {})
end

local function search(self, search_id)
  return self._searches[tostring(search_id)] or no_search(search_id)
end

function MemoryStorage:has_search(search_id) return self._searches[tostring(search_id)] ~= nil end

function MemoryStorage:load_all_job_ids(search_id)
  local s = search(self, search_id)
  local ids = table.move(s.ids, 1, #s.ids, 1, {})
  table.sort(ids, function(a, b) return s.jobs[a]._n < s.jobs[b]._n end)
  return ids
end

--- Returns a table job_id -> job for the ids given that the storage holds.
function MemoryStorage:load_jobs(job_ids)
  local out = {}
  for _, id in ipairs(job_ids) do
    local sid = tostring(id):match("^(.*)%.%d+$")
    local s = sid and self._searches[sid]
    if s and s.jobs[id] then out[id] = s.jobs[id].job end
  end
  return out
end

function MemoryStorage:_reserve(search_id, count, list, writer)
  local s = search(self, search_id)
  local first = s.next_n
  s.next_n = first + count
  for i, p in ipairs(list or {}) do
    local id = search_id .. "." .. (first + i - 1)
    s.sub[id] = { id = id, parameters = p, writer = writer, n = first + i - 1 }
  end
  for _, old in ipairs(claims_of(self, list or {})) do s.sub[old] = nil end
  forget_claims(self, list or {})
  return first
end

-- Memory is written at once: no numbers to give back, no batch waiting for a write.
function MemoryStorage._unreserve() end
function MemoryStorage._submitted() end
function MemoryStorage._has_pending() return false end
function MemoryStorage._flush() end
function MemoryStorage._release() end

function MemoryStorage:_store_jobs(search_id, jobs, writer)
  local s = search(self, search_id)
  for _, job in ipairs(jobs) do
    if s.jobs[job.id] == nil then
      s.ids[#s.ids + 1] = job.id
      s.writers[#s.ids] = writer
    end
    s.jobs[job.id] = { job = job, _n = tonumber(job.id:match("%.(%d+)$")) or 0 }
    s.sub[job.id] = nil
  end
end

function MemoryStorage:_other_jobs(ev)
  local s = search(self, ev.search_id)
  local out = {}
  for i = (ev._seen_other or 0) + 1, #s.ids do
    if s.writers[i] ~= ev._writer then out[#out + 1] = s.jobs[s.ids[i]].job end
  end
  ev._seen_other = #s.ids
  return out
end

function MemoryStorage:_unfinished(search_id, writer)
  local s = search(self, search_id)
  local out = {}
  for _, j in pairs(s.sub) do
    if j.writer ~= writer then out[#out + 1] = { id = j.id, parameters = j.parameters, _n = j.n } end
  end
  table.sort(out, function(a, b) return a._n < b._n end)
  for _, j in ipairs(out) do j._n = nil end
  return remember_unfinished(self, out)
end

---------------------------------------------------------------------------------------------------
-- SQLiteStorage and RedisStorage: the same methods over a C handle (storage_sqlite.h).

local function handle_class(name)
  local C = { __name = name }
  C.__index = C
  C.__tostring = function(self) return ("%s(%s)"):format(name, self._where) end

  function C:create_new_search() return self._h:create_search() end
  function C:load_all_search_ids() return self._h:search_ids() end
  function C:has_search(search_id) return self._h:has_search(tostring(search_id)) end

  function C:load_all_job_ids(search_id)
    if not self:has_search(search_id) then no_search(search_id) end
    return self._h:job_ids(tostring(search_id))
  end

  function C:load_jobs(job_ids)
    if type(job_ids) ~= "table" then error(("load_jobs: expected a list of job ids, got a %s"):format(type(job_ids)), 2) end
    return self._h:load(job_ids)
  end

  -- Job numbers come in blocks (_blocks[writer] = { next =, stop =, size = }), so that a submit
  -- needs no write: its batch waits in _pending[writer] for the next write, a gather's, which
  -- stores it before its results in one transaction (see "Resume a search" in the README).
  function C:_reserve(search_id, count, _, writer)
    local b = self._blocks[writer]
    if not b then
      b = { next = 0, stop = -1, size = 32 }
      self._blocks[writer] = b
    end
    if b.stop - b.next < count then
      b.size = math.max(count, math.min(2 * b.size, 4096))
      local first = self._h:reserve(tostring(search_id), writer, b.size, b.next, b.stop)
      b.next, b.stop = first, first + b.size
    end
    local first = b.next
    b.next = first + count
    return first
  end

  -- The core refused the submit: its numbers go back (when none were taken since).
  function C:_unreserve(first, count, writer)
    local b = self._blocks[writer]
    if b and b.next == first + count then b.next = first end
  end

  -- The core took the submit: its batch is stored with the next write (claims_of: the jobs listed
  -- by _unfinished that it submits again, marked in that write).
  function C:_submitted(_, first, list, writer, encoded)
    local claims = next(self._resubmit) ~= nil and claims_of(self, list) or nil -- only after unfinished_jobs
    if claims then forget_claims(self, list) end
    local p = self._pending[writer] or {}
    self._pending[writer] = p
    p[#p + 1] = { first, list, self._blocks[writer].stop, claims, encoded }
  end

  function C:_has_pending(writer) return self._pending[writer] ~= nil or self._h:waiting() end

  -- Store the batches waiting for a write, and what the journal holds, now (before a gather
  -- waits; at close).
  function C:_flush(search_id, writer)
    if self:_has_pending(writer) then self:_store_jobs(search_id, {}, writer, true) end
  end

  -- At close: the waiting batches are stored and the unused numbers of the block given back, so
  -- that a later run's numbers follow this one's.
  function C:_release(search_id, writer)
    self:_flush(search_id, writer)
    local b = self._blocks[writer]
    self._blocks[writer] = nil
    if b and b.stop > b.next then self._h:release(tostring(search_id), b.stop, b.next) end
  end

  -- Storing a gather's jobs reads the others' new jobs in the same transaction (or round trip);
  -- they wait in _others[writer] for the _other_jobs call that follows. now: commit, even in a
  -- fast loop (SQLite's journal, storage_journal.h).
  function C:_store_jobs(search_id, jobs, writer, now)
    local others, last = self._h:store(tostring(search_id), jobs, writer, self._seen[writer] or 0, self._pending[writer], now)
    self._pending[writer] = nil
    self._seen[writer] = last
    local waiting = self._others[writer]
    self._others[writer] = waiting and table.move(others, 1, #others, #waiting + 1, waiting) or others
  end

  function C:_other_jobs(ev)
    local w = ev._writer
    local jobs = self._others[w]
    if jobs then
      self._others[w] = nil
      return jobs
    end
    local last
    jobs, last = self._h:after(ev.search_id, self._seen[w] or 0, w)
    self._seen[w] = last
    return jobs
  end

  function C:_unfinished(search_id, writer)
    return remember_unfinished(self, self._h:unfinished(tostring(search_id), writer))
  end

  --- Closes the file or the connection (the garbage collector does it too).
  function C:close() self._h:close() end
  return C
end

local SQLiteStorage = handle_class("SQLiteStorage")
local RedisStorage = handle_class("RedisStorage")

-- Calls open(...); its error is raised again at the user's line (core.raise: the line that called
-- the constructor, or none outside a script).
local function opened(open, ...)
  local ok, h = pcall(open, ...)
  if not ok then core.raise(tostring(h)) end
  return h
end

local function new_handle_storage(cls, h, where)
  -- _seen[writer]: the last row (or list index) of the search each evaluator has been given
  return setmetatable({ _h = h, _where = where, _resubmit = setmetatable({}, { __mode = "k" }), _seen = {}, _others = {},
    _blocks = {}, _pending = {} }, cls)
end

--- evaluator.SQLiteStorage(path, { timeout = seconds }): searches and jobs in an SQLite file,
--- shared by the processes of one machine and kept across runs. timeout (default 10) is how long
--- a call waits for another process's write before it fails.
function M.SQLiteStorage(path, opts)
  if type(path) ~= "string" then error(("SQLiteStorage(path): path must be a string, got a %s"):format(type(path)), 2) end
  if opts ~= nil and type(opts) ~= "table" then error(("SQLiteStorage(path, opts): opts must be a table, got a %s"):format(type(opts)), 2) end
  local timeout = opts and opts.timeout or 10
  if type(timeout) ~= "number" or timeout < 0 or timeout > 3600 then
    error(("SQLiteStorage: timeout must be a number of seconds from 0 to 3600, got %s"):format(tostring(timeout)), 2)
  end
  local s = new_handle_storage(SQLiteStorage, opened(sqlite.open, path, math.floor(timeout * 1000)), ("%q"):format(path))
  s.path = path
  return s
end

local REDIS_KEYS = { host = "string", port = "number", password = "string", db = "number", timeout = "number" }

--- evaluator.RedisStorage{ host = "127.0.0.1", port = 6379, password = nil, db = 0, timeout = 10 }:
--- searches and jobs on a Redis server, shared by processes on any machine that reaches it.
function M.RedisStorage(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error(("RedisStorage{ host =, port =, password =, db = }: got a %s"):format(type(opts)), 2) end
  for k, v in pairs(opts) do
    local want = REDIS_KEYS[k]
    if not want then error(("RedisStorage: unknown key '%s' (valid keys: db, host, password, port, timeout)"):format(tostring(k)), 2) end
    if type(v) ~= want then error(("RedisStorage: %s must be a %s, got a %s"):format(k, want, type(v)), 2) end
  end
  for _, k in ipairs({ "port", "db" }) do
    if opts[k] and math.type(opts[k]) ~= "integer" and opts[k] ~= math.floor(opts[k]) then
      error(("RedisStorage: %s must be an integer, got %s"):format(k, tostring(opts[k])), 2)
    end
  end
  if opts.port and (opts.port < 1 or opts.port > 65535) then error(("RedisStorage: port %d is out of range"):format(opts.port), 2) end
  if opts.db and opts.db < 0 then error(("RedisStorage: db must be >= 0, got %d"):format(opts.db), 2) end
  local h = opened(redis.open, {
    host = opts.host, port = opts.port and math.tointeger(opts.port), db = opts.db and math.tointeger(opts.db),
    password = opts.password, timeout = opts.timeout,
  })
  return new_handle_storage(RedisStorage, h, ("%s:%d/%d"):format(opts.host or "127.0.0.1", opts.port or 6379, opts.db or 0))
end

--- For an evaluator being built: its storage (nil when none was given), search id and writer
--- token. A shared storage numbers the jobs itself (_reserve), so a continued search goes on
--- from its numbers. A rank that will serve jobs for another (serving) only checks the types:
--- it neither creates a search nor writes.
function M.attach(store, search_id, serving)
  if store == nil then
    if search_id ~= nil then
      error(("search_id '%s' is unknown: an evaluator without a storage starts a new search; pass the storage that holds it")
        :format(tostring(search_id)))
    end
    return nil, "0"
  end
  if type(store) ~= "table" or type(store._store_jobs) ~= "function" then
    error("storage must be " .. STORAGES .. (", got a %s"):format(type(store)))
  end
  if search_id ~= nil and type(search_id) ~= "string" and math.type(search_id) ~= "integer" then
    error(("search_id must be a string (as create_new_search returns it), got a %s"):format(type(search_id)))
  end
  if serving then return nil, search_id ~= nil and tostring(search_id) or "0" end
  local writer = sqlite.token()
  if search_id == nil then return store, store:create_new_search(), writer end
  search_id = tostring(search_id)
  if not store:has_search(search_id) then
    local ids = store:load_all_search_ids()
    if #ids > 20 then ids = table.move(ids, #ids - 19, #ids, 2, { "..." }) end
    error(("%s holds no search '%s' (it holds: %s)"):format(tostring(store), search_id,
      #ids > 0 and table.concat(ids, ", ") or "none"))
  end
  return store, search_id, writer
end

return M
