-- evaluator.storage: where finished jobs are kept so that other evaluators can see them.
-- MemoryStorage lives in this process, SQLiteStorage in a file; an evaluator given none keeps
-- nothing (nobody could look).
local core = require "evaluator.core"

local M = {}

local MemoryStorage = {}
MemoryStorage.__index = MemoryStorage
MemoryStorage.__name = "MemoryStorage"

--- evaluator.MemoryStorage(): searches and their jobs in this process's memory.
function M.MemoryStorage()
  return setmetatable({ _searches = {}, _order = {}, _next = 0 }, MemoryStorage)
end

function MemoryStorage:create_new_search()
  local id = tostring(self._next)
  self._next = self._next + 1
  self._searches[id] = { ids = {}, jobs = {}, next_n = 0 }
  self._order[#self._order + 1] = id
  return id
end

function MemoryStorage:load_all_search_ids()
  return table.move(self._order, 1, #self._order, 1, {})
end

local function search(self, search_id)
  local s = self._searches[tostring(search_id)]
  if not s then error(("storage has no search '%s'"):format(tostring(search_id))) end
  return s
end

function MemoryStorage:load_all_job_ids(search_id)
  local s = search(self, search_id)
  return table.move(s.ids, 1, #s.ids, 1, {})
end

--- Returns a table job_id -> job for the ids given that the storage holds.
function MemoryStorage:load_jobs(job_ids)
  local out = {}
  for _, id in ipairs(job_ids) do
    local sid = tostring(id):match("^(.*)%.%d+$")
    local s = sid and self._searches[sid]
    if s and s.jobs[id] then out[id] = s.jobs[id] end
  end
  return out
end

--- Job numbers n..n+count-1 for a search, never handed out twice.
function MemoryStorage:_reserve(search_id, count)
  local s = search(self, search_id)
  local first = s.next_n
  s.next_n = first + count
  return first
end

function MemoryStorage:has_search(search_id) return self._searches[tostring(search_id)] ~= nil end

function MemoryStorage:_store_jobs(search_id, jobs)
  local s = search(self, search_id)
  for _, job in ipairs(jobs) do
    if s.jobs[job.id] == nil then s.ids[#s.ids + 1] = job.id end
    s.jobs[job.id] = job
  end
end

-- The jobs of this search that the evaluator ev neither ran nor returned before.
function MemoryStorage:_other_jobs(ev)
  local s = search(self, ev.search_id)
  local seen = ev._seen_other or 0
  local out = {}
  for i = seen + 1, #s.ids do
    local job = s.jobs[s.ids[i]]
    if not ev._own_ids[job.id] then out[#out + 1] = job end
  end
  ev._seen_other = #s.ids
  return out
end

--- evaluator.SQLiteStorage(path): searches and jobs in an SQLite file, shared by the processes of
--- one machine and kept across runs (give an evaluator its search_id to resume a search).
local SQLiteStorage = {}
SQLiteStorage.__index = SQLiteStorage
SQLiteStorage.__name = "SQLiteStorage"

function M.SQLiteStorage(path)
  if type(path) ~= "string" then error(("SQLiteStorage(path): path must be a string, got a %s"):format(type(path)), 2) end
  return setmetatable({ path = path, _db = core.sqlite_open(path) }, SQLiteStorage)
end

function SQLiteStorage:create_new_search() return self._db:create_search() end
function SQLiteStorage:load_all_search_ids() return self._db:search_ids() end
function SQLiteStorage:has_search(search_id) return self._db:has_search(tostring(search_id)) end

function SQLiteStorage:load_all_job_ids(search_id)
  if not self:has_search(search_id) then error(("storage has no search '%s'"):format(tostring(search_id))) end
  return self._db:job_ids(tostring(search_id))
end

function SQLiteStorage:load_jobs(job_ids) return self._db:load(job_ids) end
function SQLiteStorage:_reserve(search_id, count) return self._db:reserve(tostring(search_id), count) end
function SQLiteStorage:_store_jobs(search_id, jobs) self._db:store(search_id, jobs) end

function SQLiteStorage:_other_jobs(ev)
  local jobs, last = self._db:after(ev.search_id, ev._seen_other or 0)
  ev._seen_other = last
  local out = {}
  for _, job in ipairs(jobs) do
    if not ev._own_ids[job.id] then out[#out + 1] = job end
  end
  return out
end

M.RedisStorage = function()
  error("RedisStorage is not implemented yet: use evaluator.SQLiteStorage(path) (shared by the processes of one machine) or evaluator.MemoryStorage()", 2)
end

--- For an evaluator being built: its storage (nil when none was given) and search id. A shared
--- storage numbers the jobs itself (_reserve), so a continued search goes on from its numbers.
function M.attach(store, search_id)
  if store == nil then
    if search_id ~= nil then
      error(("search_id '%s' is unknown: an evaluator without a storage starts a new search; pass the storage that holds it")
        :format(tostring(search_id)))
    end
    return nil, "0"
  end
  if type(store) ~= "table" or type(store._store_jobs) ~= "function" then
    error("storage must be evaluator.MemoryStorage() or evaluator.SQLiteStorage(path)")
  end
  if search_id == nil then return store, store:create_new_search() end
  search_id = tostring(search_id)
  if not store:has_search(search_id) then
    error(("storage holds no search '%s' (it holds: %s)"):format(search_id, table.concat(store:load_all_search_ids(), ", ")))
  end
  return store, search_id
end

return M
