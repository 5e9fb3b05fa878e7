-- evaluator: the user-facing API (DeepHyper's Evaluator in Lua) over the C core, evaluator.core.
-- The core does the bookkeeping; this module validates arguments, runs callbacks, keeps jobs_done.
local core = require "evaluator.core"
local storage = require "evaluator.storage"

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
local claimed_dirs = {}    -- directory -> whether this process was alone there when it first dumped

---------------------------------------------------------------------------------------------------
-- Errors point at the user's line: core.raise places them (the first frame outside these modules).

local function fail(fmt, ...)
  core.raise(select("#", ...) > 0 and fmt:format(...) or fmt)
end

-- Call f (Lua code of these modules, or a C function that does not place its errors itself); an
-- error message is raised again at the user's line.
local function checked(f, ...)
  local ok, a, b, c = pcall(f, ...)
  if not ok then
    if type(a) ~= "string" then error(a, 0) end -- not a message: the runtime's own (a worker's end)
    core.raise(a)
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
  -- Left through an error, nothing is worth waiting for: running jobs are stopped at once (they come
  -- back "F_CANCELLED" into jobs_done, so a pcall handler can still dump them).
  cls.__close = function(obj, err)
    if err ~= nil then obj:_close(false, true) else obj:close() end
  end
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
  if kind == "custom" and type(cls.execute) ~= "function" then
    fail(("%s has no execute(self, job): a backend made with Evaluator:extend() must define it"):format(cls.__name))
  end
  local kw = check_kwargs(kind, method_kwargs)
  -- an mpicomm rank other than the root serves jobs inside core.new, and a thread worker re-running
  -- the script serves or gets nil: neither keeps anything
  local ok, rank = pcall(function() return (kw.comm or core.mpi.COMM_WORLD):rank() end) -- core.new names a bad comm
  local serving = (kind == "mpicomm" and ok and rank ~= (kw.root or 0)) or core.in_worker_thread()
  local store, search_id, writer = checked(storage.attach, kw.storage, kw.search_id, serving)
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
    _writer = writer, -- tells this evaluator's stored jobs from the others'
    _unstored = nil, -- jobs that came back but that the storage did not take yet
    _job_timeout = kw.job_timeout,
    _continues = store ~= nil and kw.search_id ~= nil, -- continues a search held in the storage
  }, cls)
  self._want_jobs = has_hook(self._callbacks, "on_launch")
  -- A custom backend's jobs run its execute(self, job), as coroutines the core resumes.
  local run = kind == "custom" and function(job) return self:execute(job) end or run_function
  self._core = core.new({
    kind = kind, run = run, kwargs = self.run_function_kwargs, num_workers = kw.num_workers,
    job_timeout = kw.job_timeout, job_memory_limit = kw.job_memory_limit, comm = kw.comm, root = kw.root,
    search_id = search_id,
  })
  if self._core == nil then return nil end -- a worker rank whose root has closed
  self.num_workers = self._core:num_workers()
  if kind == "serial" and self.num_workers ~= 1 then
    io.stderr:write(("evaluator-lua: note: the serial method runs one job at a time; num_workers = %d is kept "
      .. "as the number of jobs a driver keeps submitted (use \"thread\" or \"process\" to run them at once)\n")
      :format(self.num_workers))
  end
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
  local store = self._storage
  local first_n = store and #list > 0 and checked(store._reserve, store, self.search_id, #list, list, self._writer) or nil
  -- encoded: the list as the core encoded it to send it, which the storage keeps as it is
  local ok, jobs, encoded = pcall(self._core.submit, self._core, list, self._want_jobs, first_n, first_n ~= nil)
  if not ok then
    if first_n then store:_unreserve(first_n, #list, self._writer) end
    error(jobs, 0) -- the core's message, placed already
  end
  if first_n then store:_submitted(self.search_id, first_n, list, self._writer, encoded) end
  if jobs then
    for _, job in ipairs(jobs) do call_hook(self, "on_launch", job) end
  end
  if over then
    fail("MaximumJobsSpawnReached: the maximum of %d jobs is reached; %d of this submit were not submitted",
      self._max_jobs, over)
  end
end

-- What gather and close do with jobs that came back (the list, completed in place). Every job
-- goes into jobs_done at once, and into the storage before gather returns it or a callback sees
-- it, so an error (the storage's, a callback's, Ctrl-C) loses none of them. Jobs that the storage
-- did not take wait in _unstored: the next call stores them first and returns them too.
local function take_jobs(self, jobs)
  local done, n = self.jobs_done, #self.jobs_done
  for i = 1, #jobs do done[n + i] = jobs[i] end
  local store, waiting = self._storage, self._unstored
  if waiting then
    table.move(jobs, 1, #jobs, #waiting + 1, waiting)
    table.move(waiting, 1, #waiting, 1, jobs)
  end
  if store and #jobs > 0 then
    local ok, err = pcall(store._store_jobs, store, self.search_id, jobs, self._writer)
    self._unstored = not ok and table.move(jobs, 1, #jobs, 1, {}) or nil
    if not ok then
      local ids = {}
      for i = 1, math.min(#jobs, 10) do ids[i] = jobs[i].id end
      local msg = ("%s; %d finished jobs are not stored yet (%s%s): they are in jobs_done, and the next gather "
        .. "stores and returns them"):format(tostring(err), #jobs,
        table.concat(ids, ", "), #jobs > 10 and ", ..." or "")
      if not self._closed then fail(msg) end
      io.stderr:write("evaluator-lua: close: ", msg, "\n") -- close goes on: its jobs still reach the callbacks
    end
  end
  if self._callbacks[1] then
    for i = 1, #jobs do call_hook(self, "on_done", jobs[i]) end
  end
end

-- A wait shorter than this (seconds) is a fast loop's: see collect.
local SHORT_WAIT_S = 0.005

-- Waits as the core's collect(type_, size) does, into jobs: first up to SHORT_WAIT_S, then, when
-- more is to come, after storing what waits for a write.
local function wait_storing(self, store, type_, size, jobs)
  local core_ = self._core
  local more = core_:collect(type_, size, SHORT_WAIT_S)
  table.move(more, 1, #more, #jobs + 1, jobs)
  if type_ == "BATCH" and #jobs >= size then return end
  local _, _, in_flight = core_:counts()
  if in_flight == 0 then return end
  pcall(store._flush, store, self.search_id, self._writer) -- a failure is told by the next write, which keeps the jobs
  more = core_:collect(type_, type_ == "ALL" and size or size - #jobs)
  table.move(more, 1, #more, #jobs + 1, jobs)
end

-- The core's collect(type_, size). Jobs submitted since the storage's last write are stored with
-- this gather's results, before them, in one write: one write a round. When gather has to wait
-- longer than a fast loop's round (SHORT_WAIT_S), it stores them first, so that a job that runs
-- long is in the storage as submitted while it runs (and SQLite's journal is folded: other
-- processes see the jobs while this one waits).
local function collect(self, type_, size)
  local store = self._storage
  if not (store and store:_has_pending(self._writer)) then return self._core:collect(type_, size) end
  local jobs = {}
  local ok, err = pcall(wait_storing, self, store, type_, size, jobs)
  if not ok then -- Ctrl-C, a budget: the jobs already handed over are kept and stored
    take_jobs(self, jobs)
    error(err, 0)
  end
  return jobs
end

function Evaluator:gather(type_, size)
  if type_ ~= "ALL" and type_ ~= "BATCH" then
    fail(('Unsupported gather operation: %s (use "ALL" or "BATCH")'):format(tostring(type_)))
  end
  -- BATCH 0 is met at once: what is done already (possibly nothing) comes back without waiting.
  if size ~= nil and (math.type(size) ~= "integer" or size < 0) then
    if not (type(size) == "number" and size >= 0 and size == math.floor(size)) then
      fail(("gather: size must be a non-negative integer, got %s"):format(tostring(size)))
    end
    size = math.tointeger(size)
  end
  local jobs = collect(self, type_, size or 1)
  take_jobs(self, jobs)
  local others = self._storage and self:gather_other_jobs_done() or {}
  if self._callbacks[1] then call_hook(self, "on_gather", jobs, others) end
  return jobs, others
end

function Evaluator:gather_other_jobs_done()
  local store = self._storage
  if not store then return {} end
  local others = checked(store._other_jobs, store, self)
  if self._callbacks[1] then
    for _, job in ipairs(others) do call_hook(self, "on_done_other", job) end
  end
  return others
end

--- The jobs of this search stored as submitted but never finished, by any evaluator but this one
--- (after a crash or kill -9): a list of { id =, parameters = }. Submitting one's parameters table
--- again (ev:submit{ job.parameters }) marks it resubmitted, in the same transaction, so that a
--- later resume does not list it again.
function Evaluator:unfinished_jobs()
  local store = self._storage
  if not store then return {} end
  return checked(store._unfinished, store, self.search_id, self._writer)
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
    -- As DeepHyper: the first dump starts the file afresh, later ones append. Only a file a previous
    -- run left is replaced: one last written before this process started, in a directory where no
    -- other live process dumps (core.dir_claim); evaluators and runs dumping into one file at the
    -- same time all keep their rows, and a continued stored search appends.
    if not self._dumped and not self._continues then
      local alone = claimed_dirs[log_dir]
      if alone == nil then
        alone = core.dir_claim(log_dir) or false
        claimed_dirs[log_dir] = alone
      end
      local mtime = core.file_mtime(path)
      if alone and mtime and mtime < core.started_at then os.remove(path) end
    end
    local ok, err = pcall(core.csv_dump, path, self.jobs_done, flush and true or false)
    if not ok then fail("dump_jobs_done_to_csv: %s (jobs_done is kept)", tostring(err)) end
    self._dumped = true
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
  local v = checked(core.json_decode, key)
  if type(v) ~= "table" or (next(v) ~= nil and v[1] ~= nil) or key:match("^%s*%[") then
    fail(("decode: %q is not a JSON object"):format(#key > 60 and key:sub(1, 57) .. "..." or key))
  end
  return v
end

function Evaluator:to_json()
  return { type = getmetatable(self).__name, num_workers = self.num_workers }
end

function Evaluator:close() self:_close(self._wait_on_exit, self._cancel_on_exit) end

function Evaluator:_close(wait, cancel)
  if self._closed then return end
  self._closed = true
  open_evaluators[self] = nil
  if self._abort_on_exit then
    call_hook(self, "on_close")
    io.stderr:write("evaluator-lua: abort_on_exit: aborting every rank\n")
    core.abort(1)
  end
  local jobs = self._core:close(wait, cancel)
  if #jobs > 0 or self._unstored then -- the jobs the storage did not take yet get a last try
    take_jobs(self, jobs)
    if self._callbacks[1] then call_hook(self, "on_gather", jobs, {}) end
  end
  if self._storage then -- what submit left to be written, and the job numbers it did not use
    local ok, err = pcall(self._storage._release, self._storage, self.search_id, self._writer)
    if not ok then io.stderr:write("evaluator-lua: close: ", tostring(err), "\n") end
  end
  call_hook(self, "on_close")
end

--- Called by the runtime when the script ends: closes what the script left open.
function M._close_all()
  local list = {}
  for ev in pairs(open_evaluators) do list[#list + 1] = ev end
  for _, ev in ipairs(list) do ev:close() end
end

--- Raises an error at the user's line: for the other evaluator.* modules (search, callbacks).
M._fail = fail

return M
