-- evaluator: the user-facing API (DeepHyper's Evaluator in Lua) over the C core, evaluator.core.
-- The core does the bookkeeping; this module validates arguments, runs callbacks, keeps jobs_done.
local core = require "evaluator.core"
local storage = require "evaluator.storage"
local custom = require "evaluator.custom"

local M = {}

M.FAIL_RETURN_VALUE = "F"
-- JSON null inside a decoded table (ev:decode), the same value as cjson.null: encodes back as null.
M.null = require("cjson").null
M.mpi = core.mpi
M.MemoryStorage = storage.MemoryStorage
M.SQLiteStorage = storage.SQLiteStorage
M.RedisStorage = storage.RedisStorage

local METHOD_CLASS = {
  serial = "SerialEvaluator", thread = "ThreadPoolEvaluator",
  process = "ProcessPoolEvaluator", mpicomm = "MPICommEvaluator",
}
local METHODS = '"serial", "thread", "process", "mpicomm"'

-- The method_kwargs each kind accepts (true: every kind; "mpicomm": that method only).
local KWARGS = {
  num_workers = true, callbacks = true, run_function_kwargs = true, storage = true, search_id = true,
  job_timeout = true, job_memory_limit = true, wait_on_exit = true, cancel_jobs_on_exit = true,
  comm = "mpicomm", root = "mpicomm", abort_on_exit = "mpicomm",
}

local open_evaluators = {} -- closed at the end of the script if the script did not

---------------------------------------------------------------------------------------------------
-- Errors point at the user's line: the first frame outside these modules.

local function user_level()
  local level = 3
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return 1 end
    if info.what ~= "C" and not info.source:find("^@lua/evaluator/") then return level - 1 end
    level = level + 1
  end
end

local function fail(fmt, ...)
  error(select("#", ...) > 0 and fmt:format(...) or fmt, user_level())
end

-- Call a core function; its errors are raised again at the user's line.
local function checked(f, ...)
  local ok, a, b, c = pcall(f, ...)
  if not ok then
    if type(a) ~= "string" then error(a, 0) end -- not a message: the runtime's own (a worker's end)
    fail((a:gsub("^[^\n:]*:%d+: ", "")))
  end
  return a, b, c
end

---------------------------------------------------------------------------------------------------
-- Classes

-- Read-only fields computed from the core.
local properties = {
  num_jobs_submitted = function(self) return (self._core:counts()) end,
  num_jobs_gathered = function(self) return select(2, self._core:counts()) end,
  time_left = function(self) return self._core:time_left() end,
}

local function make_class(parent, name)
  local cls = { __name = name }
  cls.__index = function(obj, key)
    local v = cls[key]
    if v ~= nil then return v end
    local get = properties[key]
    if get then return get(obj) end
  end
  cls.__close = function(obj) obj:close() end
  cls.__tostring = function(obj) return ("%s(%d workers)"):format(name, obj.num_workers) end
  cls.new = function(run_function, method_kwargs) return M._construct(cls, run_function, method_kwargs) end
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, run_function, method_kwargs) return c.new(run_function, method_kwargs) end,
  })
end

local Evaluator = make_class(nil, "Evaluator")
Evaluator._kind = "custom"
M.Evaluator = Evaluator

--- A subclass for a custom backend: it defines execute(self, job), run in a coroutine per job.
function Evaluator:extend(name)
  local cls = make_class(self, name or "Evaluator")
  cls._kind = "custom"
  return cls
end

for method, name in pairs(METHOD_CLASS) do
  local cls = make_class(Evaluator, name)
  cls._kind = method
  M[name] = cls
end

---------------------------------------------------------------------------------------------------
-- Construction

local function check_kwargs(kind, kw)
  if kw == nil then return {} end
  if type(kw) ~= "table" then fail(("method_kwargs must be a table, got a %s"):format(type(kw))) end
  for key in pairs(kw) do
    local ok = KWARGS[key]
    if not ok then
      local names = {}
      for k in pairs(KWARGS) do names[#names + 1] = k end
      table.sort(names)
      fail(("unknown method_kwargs key '%s' (valid keys: %s)"):format(tostring(key), table.concat(names, ", ")))
    elseif ok ~= true and ok ~= kind then
      fail(("method_kwargs key '%s' is only for the %s method"):format(key, ok))
    end
  end
  local function positive(key, integer)
    local v = kw[key]
    if v == nil then return end
    if type(v) ~= "number" or v <= 0 or (integer and math.type(v) ~= "integer" and v ~= math.floor(v)) then
      fail(("%s must be a positive %s, got %s"):format(key, integer and "integer" or "number", tostring(v)))
    end
  end
  positive("num_workers", true)
  positive("job_timeout")
  positive("job_memory_limit", true)
  if kw.root ~= nil and math.type(kw.root) ~= "integer" then
    fail(("root must be an integer rank, got %s"):format(tostring(kw.root)))
  end
  if kw.run_function_kwargs ~= nil and type(kw.run_function_kwargs) ~= "table" then
    fail(("run_function_kwargs must be a table, got a %s"):format(type(kw.run_function_kwargs)))
  end
  return kw
end

-- callbacks: a list of callback objects (one object alone is accepted too).
local function callback_list(cbs)
  if cbs == nil then return {} end
  if type(cbs) ~= "table" then fail(("callbacks must be a list of tables, got a %s"):format(type(cbs))) end
  local hooks = { "on_launch", "on_done", "on_gather", "on_done_other", "on_close" }
  for _, h in ipairs(hooks) do
    if cbs[h] ~= nil then return { cbs } end
  end
  for i, cb in ipairs(cbs) do
    if type(cb) ~= "table" then fail(("callbacks[%d] must be a table, got a %s"):format(i, type(cb))) end
  end
  return cbs
end

local function has_hook(cbs, hook)
  for _, cb in ipairs(cbs) do
    if cb[hook] then return true end
  end
  return false
end

function M._construct(cls, run_function, method_kwargs)
  local kind = cls._kind
  if type(run_function) ~= "function" and not (getmetatable(run_function) or {}).__call then
    fail(("run_function must be a function, got a %s"):format(type(run_function)))
  end
  if kind == "custom" and cls.execute == nil then
    fail(("%s has no execute(self, job): a backend made with Evaluator:extend() must define it"):format(cls.__name))
  end
  local kw = check_kwargs(kind, method_kwargs)
  local store, search_id = checked(storage.attach, kw.storage, kw.search_id)
  local self = setmetatable({
    run_function = run_function,
    run_function_kwargs = kw.run_function_kwargs or {},
    jobs_done = {},
    timeout = nil,
    search_id = search_id,
    _storage = store,
    _callbacks = callback_list(kw.callbacks),
    _wait_on_exit = kw.wait_on_exit ~= false,
    _cancel_on_exit = kw.cancel_jobs_on_exit ~= false,
    _abort_on_exit = kw.abort_on_exit == true,
    _max_jobs = nil,
    _own_ids = store and {} or nil,
    _job_timeout = kw.job_timeout,
  }, cls)
  self._want_jobs = kind == "custom" or has_hook(self._callbacks, "on_launch")
  self._core = checked(core.new, {
    kind = kind, run = run_function, kwargs = self.run_function_kwargs, num_workers = kw.num_workers,
    job_timeout = kw.job_timeout, job_memory_limit = kw.job_memory_limit, comm = kw.comm, root = kw.root,
    search_id = search_id,
  })
  if self._core == nil then return nil end -- a worker rank whose root has closed
  self.num_workers = kind == "custom" and (kw.num_workers or 1) or self._core:num_workers()
  if kind == "custom" then custom.init(self) end
  open_evaluators[self] = true
  return self
end

--- evaluator.create(run_function, method, method_kwargs)
function M.create(run_function, method, method_kwargs)
  method = method or "serial"
  if method == "ray" then
    fail('method "ray" is not available: Ray has no C API to embed in evaluator-lua. Use one of '
      .. METHODS .. ' ("mpicomm" spreads jobs over MPI ranks, as Ray would over nodes)')
  end
  local name = METHOD_CLASS[method]
  if not name then
    fail(("unknown method %s: use one of %s"):format(type(method) == "string" and '"' .. method .. '"' or tostring(method), METHODS))
  end
  return M[name].new(run_function, method_kwargs)
end

---------------------------------------------------------------------------------------------------
-- The Evaluator's methods

local function call_hook(self, hook, ...)
  for _, cb in ipairs(self._callbacks) do
    local f = cb[hook]
    if f then f(cb, ...) end
  end
end

function Evaluator:submit(list)
  if type(list) ~= "table" then fail("submit expects a list of parameter tables, got a %s", type(list)) end
  local over
  if self._max_jobs then
    local room = math.max(self._max_jobs - self.num_jobs_submitted, 0)
    if #list > room then
      over = #list - room
      list = table.move(list, 1, room, 1, {})
    end
  end
  local first_n = self._storage and #list > 0 and checked(self._storage._reserve, self._storage, self.search_id, #list) or nil
  local jobs = self._core:submit(list, self._want_jobs, first_n)
  if jobs then
    if self._kind == "custom" then custom.launch(self, jobs) end
    if self._callbacks[1] then
      for _, job in ipairs(jobs) do call_hook(self, "on_launch", job) end
    end
  end
  if over then
    fail("MaximumJobsSpawnReached: the maximum of %d jobs is reached; %d of this submit were not submitted",
      self._max_jobs, over)
  end
end

-- What gather and close do with jobs that came back: every job is kept before any callback runs,
-- so an error in a callback (or Ctrl-C) loses none of them.
local function take_jobs(self, jobs)
  local done, n = self.jobs_done, #self.jobs_done
  for i = 1, #jobs do done[n + i] = jobs[i] end
  local store = self._storage
  if store and #jobs > 0 then
    for i = 1, #jobs do self._own_ids[jobs[i].id] = true end
    store:_store_jobs(self.search_id, jobs)
  end
  if self._callbacks[1] then
    for i = 1, #jobs do call_hook(self, "on_done", jobs[i]) end
  end
end

function Evaluator:gather(type_, size)
  if type_ ~= "ALL" and type_ ~= "BATCH" then
    fail(('Unsupported gather operation: %s (use "ALL" or "BATCH")'):format(tostring(type_)))
  end
  if size ~= nil and (math.type(size) ~= "integer" or size < 1) then
    if not (type(size) == "number" and size >= 1 and size == math.floor(size)) then
      fail(("gather: size must be a positive integer, got %s"):format(tostring(size)))
    end
    size = math.tointeger(size)
  end
  local jobs
  if self._kind == "custom" then jobs = custom.gather(self, type_, size or 1)
  else jobs = self._core:collect(type_, size or 1) end
  take_jobs(self, jobs)
  local others = self._storage and self:gather_other_jobs_done() or {}
  if self._callbacks[1] then call_hook(self, "on_gather", jobs, others) end
  return jobs, others
end

function Evaluator:gather_other_jobs_done()
  if not self._storage then return {} end
  local others = self._storage:_other_jobs(self)
  if self._callbacks[1] then
    for _, job in ipairs(others) do call_hook(self, "on_done_other", job) end
  end
  return others
end

function Evaluator:set_timeout(seconds)
  if seconds ~= nil and (type(seconds) ~= "number" or seconds < 0) then
    fail(("set_timeout: seconds must be a non-negative number or nil, got %s"):format(tostring(seconds)))
  end
  self.timeout = seconds
  self._core:set_budget(seconds)
end

function Evaluator:set_maximum_num_jobs_submitted(n)
  if math.type(n) ~= "integer" and not (type(n) == "number" and n == math.floor(n)) then
    fail(("set_maximum_num_jobs_submitted: n must be an integer, got %s"):format(tostring(n)))
  end
  self._max_jobs = math.tointeger(n)
end

function Evaluator:dump_jobs_done_to_csv(log_dir, filename, flush)
  if type(log_dir) == "table" then
    log_dir, filename, flush = log_dir.log_dir, log_dir.filename, log_dir.flush
  end
  log_dir, filename = log_dir or ".", filename or "results.csv"
  local path = log_dir:sub(-1) == "/" and log_dir .. filename or log_dir .. "/" .. filename
  if #self.jobs_done > 0 then
    local ok, err = pcall(core.csv_dump, path, self.jobs_done, flush and true or false)
    if not ok then fail("dump_jobs_done_to_csv: %s (jobs_done is kept)", tostring(err):gsub("^[^\n:]*:%d+: ", "")) end
  end
  self.jobs_done = {}
end
Evaluator.dump_evals = Evaluator.dump_jobs_done_to_csv

function Evaluator:convert_for_csv(value)
  if type(value) == "table" then return core.json_encode(value) end
  return value
end

function Evaluator:decode(key)
  if type(key) ~= "string" then fail(("decode: expected JSON text, got a %s"):format(type(key))) end
  local ok, v = pcall(core.json_decode, key)
  if not ok then fail((tostring(v):gsub("^[^\n:]*:%d+: ", ""))) end
  if type(v) ~= "table" or (next(v) ~= nil and v[1] ~= nil) or key:match("^%s*%[") then
    fail(("decode: %q is not a JSON object"):format(#key > 60 and key:sub(1, 57) .. "..." or key))
  end
  return v
end

function Evaluator:to_json()
  return { type = getmetatable(self).__name, num_workers = self.num_workers }
end

function Evaluator:close()
  if self._closed then return end
  self._closed = true
  open_evaluators[self] = nil
  if self._abort_on_exit then
    call_hook(self, "on_close")
    io.stderr:write("evaluator-lua: abort_on_exit: aborting every rank\n")
    core.abort(1)
  end
  local jobs
  if self._kind == "custom" then jobs = custom.close(self, self._wait_on_exit, self._cancel_on_exit)
  else jobs = self._core:close(self._wait_on_exit, self._cancel_on_exit) end
  if #jobs > 0 then
    take_jobs(self, jobs)
    if self._callbacks[1] then call_hook(self, "on_gather", jobs, {}) end
  end
  call_hook(self, "on_close")
end

--- Called by the runtime when the script ends: closes what the script left open.
function M._close_all()
  local list = {}
  for ev in pairs(open_evaluators) do list[#list + 1] = ev end
  for _, ev in ipairs(list) do ev:close() end
end

return M
