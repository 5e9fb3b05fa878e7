-- evaluator.callbacks: ready callbacks for create's callbacks list: Progress (one live line on
-- stderr), Logger (one line per finished job), SearchEarlyStopping (stops a search.* driver).
-- The drivers of evaluator.search also call on_search_begin(cb, info) and on_search_end(cb, best,
-- jobs), which tell these callbacks the number of evaluations and whether the search maximises.
local evaluator = require "evaluator"

local M = {}

local fail = evaluator._fail
local wtime = evaluator.mpi.wtime
local json_encode = require("evaluator.core").json_encode

local function options(name, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then fail("%s: expected a table of options, got a %s", name, type(opts)) end
  for k in pairs(opts) do
    if not known[k] then fail("%s: unknown option '%s'", name, tostring(k)) end
  end
  return opts
end

local function number_option(name, opts, key, min)
  local v = opts[key]
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < min) then
    fail("%s: %s must be a number >= %s, got %s", name, key, tostring(min), tostring(v))
  end
  return v
end

-- The job's objective as a number, or nil when it failed.
local function objective(job)
  local o = job.objective
  if type(o) == "number" and o == o then return o end
  return nil
end

local function better(a, b, maximize)
  if b == nil then return true end
  if maximize then return a > b end
  return a < b
end

local function fmt_seconds(s)
  if s >= 3600 then return ("%dh%02dm"):format(s // 3600, s % 3600 // 60) end
  if s >= 60 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%.0fs"):format(s)
end

local function fmt_number(v) return ("%.6g"):format(v) end

-- Whether stderr is a terminal (test -t reads the descriptor the child inherits).
local function stderr_is_terminal()
  return os.execute("test -t 2") == true
end

---------------------------------------------------------------------------------------------------
-- Progress

local Progress = {}
Progress.__index = Progress

--- Progress{ interval = s, redraw = bool, total = n, maximize = bool }: a line on stderr with
--- done/total, jobs/s, best objective, failures and ETA. On a terminal it is redrawn in place (at
--- most 10 times a second); otherwise a plain line every `interval` seconds (default 10) and one at
--- the end. `redraw` forces either; a driver tells it total and maximize.
function M.Progress(opts)
  opts = options("Progress", opts, { interval = true, redraw = true, total = true, maximize = true, stream = true })
  local self = setmetatable({
    interval = number_option("Progress", opts, "interval", 0) or 10,
    total = number_option("Progress", opts, "total", 1),
    maximize = opts.maximize ~= false,
    stream = opts.stream or io.stderr,
    done = 0, failed = 0, best = nil, t0 = wtime(), last = -math.huge, finished = false,
  }, Progress)
  if opts.redraw ~= nil then self.redraw = opts.redraw and true or false end
  return self
end

function Progress:on_search_begin(info)
  self.total = info.max_evals or self.total
  self.maximize = info.maximize
  self.t0 = wtime()
  self.deadline = info.timeout and self.t0 + info.timeout or nil
end

--- The line as it stands.
function Progress:line()
  local elapsed = math.max(wtime() - self.t0, 1e-9)
  local rate = self.done / elapsed
  local parts = { self.total and ("%d/%d jobs"):format(self.done, self.total) or ("%d jobs"):format(self.done),
    ("%.1f jobs/s"):format(rate), "best " .. (self.best and fmt_number(self.best) or "-"),
    ("%d failed"):format(self.failed) }
  local eta = self.total and rate > 0 and math.max(self.total - self.done, 0) / rate or nil
  if self.deadline then eta = math.min(eta or math.huge, math.max(self.deadline - wtime(), 0)) end -- the budget ends it
  if eta then parts[#parts + 1] = "ETA " .. fmt_seconds(eta) end
  parts[#parts + 1] = "elapsed " .. fmt_seconds(elapsed)
  return "[evaluator] " .. table.concat(parts, " | ")
end

-- Decided on first use, so that worker ranks (which build the callback too) never ask.
function Progress:redrawing()
  if self.redraw == nil then self.redraw = self.stream == io.stderr and stderr_is_terminal() end
  return self.redraw
end

function Progress:draw(final)
  local now = wtime()
  if self:redrawing() then
    if not final and now - self.last < 0.1 then return end
    self.stream:write("\r", self:line(), "\27[K", final and "\n" or "")
  else
    if not final and now - self.last < self.interval then return end
    self.stream:write(self:line(), "\n")
  end
  self.stream:flush()
  self.last, self.finished = now, final
end

function Progress:on_done(job)
  self.done, self.finished = self.done + 1, false
  local o = objective(job)
  if o == nil then self.failed = self.failed + 1
  elseif better(o, self.best, self.maximize) then self.best = o end
  if self.last == -math.huge and not self:redrawing() then self.last = wtime() end -- the first plain line an interval in
  self:draw(false)
end

-- The final line: at the end of a driver, or at close for a hand-written loop.
function Progress:on_search_end() if self.done > 0 and not self.finished then self:draw(true) end end
Progress.on_close = Progress.on_search_end

---------------------------------------------------------------------------------------------------
-- Logger

local Logger = {}
Logger.__index = Logger

local function params_text(p)
  local ok, text = pcall(json_encode, p)
  return ok and text or "?"
end

--- Logger{ stream = file }: one line per finished job (default on stderr): id, status, objective,
--- duration, rank, parameters (JSON), and the first line of the error of a failed job.
function M.Logger(opts)
  opts = options("Logger", opts, { stream = true })
  return setmetatable({ stream = opts.stream or io.stderr }, Logger)
end

function Logger:on_done(job)
  local md = job.metadata or {}
  local dur = (md.timestamp_end and md.timestamp_start) and ("%.3fs"):format(md.timestamp_end - md.timestamp_start) or "-"
  local o = job.objective
  local text = type(o) == "table" and params_text(o) or tostring(o)
  local line = ("[evaluator] job %s %s objective=%s time=%s rank=%s %s"):format(tostring(job.id), tostring(job.status),
    text, dur, tostring(md.rank), params_text(job.parameters))
  if md.error then line = line .. " error=" .. tostring(md.error):match("^[^\n]*") end
  self.stream:write(line, "\n")
  self.stream:flush()
end

---------------------------------------------------------------------------------------------------
-- SearchEarlyStopping

local Stopping = {}
Stopping.__index = Stopping

--- SearchEarlyStopping{ patience = n, objective_threshold = v, maximize = bool, verbose = bool }:
--- sets search_stopped (which the drivers of evaluator.search look at before each submit) once
--- `patience` jobs in a row finished without improving the best objective (a failed job does not
--- improve it), or once the best objective reaches the threshold. Patience defaults to 10.
function M.SearchEarlyStopping(opts)
  opts = options("SearchEarlyStopping", opts, { patience = true, objective_threshold = true, maximize = true, verbose = true })
  local patience = number_option("SearchEarlyStopping", opts, "patience", 1) or 10
  if patience ~= math.floor(patience) then fail("SearchEarlyStopping: patience must be an integer, got %s", tostring(patience)) end
  local threshold = opts.objective_threshold
  if threshold ~= nil and (type(threshold) ~= "number" or threshold ~= threshold) then
    fail("SearchEarlyStopping: objective_threshold must be a number, got %s", tostring(threshold))
  end
  return setmetatable({ patience = patience, objective_threshold = threshold, maximize = opts.maximize ~= false,
    verbose = opts.verbose ~= false, best = nil, since_best = 0, search_stopped = false, reason = nil }, Stopping)
end

function Stopping:on_search_begin(info) self.maximize = info.maximize end

function Stopping:stop(reason)
  self.search_stopped, self.reason = true, reason
  if self.verbose then io.stderr:write("[evaluator] SearchEarlyStopping: ", reason, "\n") end
end

function Stopping:on_done(job)
  if self.search_stopped then return end
  local o = objective(job)
  if o ~= nil and better(o, self.best, self.maximize) then
    self.best, self.since_best = o, 0
  else
    self.since_best = self.since_best + 1
  end
  local t = self.objective_threshold
  if t and self.best and (self.maximize and self.best >= t or not self.maximize and self.best <= t) then
    self:stop(("the best objective %s reached the threshold %s"):format(fmt_number(self.best), fmt_number(t)))
  elseif self.since_best >= self.patience then
    self:stop(("no improvement in the last %d jobs (best objective %s)"):format(self.patience,
      self.best and fmt_number(self.best) or "none"))
  end
end

return M
