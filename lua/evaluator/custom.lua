-- evaluator.custom: running a custom backend's execute(self, job), one coroutine per job.
-- A coroutine that yields is waiting on something outside; gather resumes every one each round.
local core = require "evaluator.core"

local M = {}

local NAP = 0.001 -- seconds between rounds when no coroutine finished

function M.init(self)
  self._running = {} -- list of { job =, co =, t0 = }
end

local function traceback(msg)
  if type(msg) ~= "string" then msg = tostring(msg) end
  return debug.traceback(msg, 2)
end

function M.launch(self, jobs)
  local running = self._running
  for _, job in ipairs(jobs) do
    local co = coroutine.create(function()
      return xpcall(self.execute, traceback, self, job)
    end)
    running[#running + 1] = { job = job, co = co, t0 = self._core:now() }
  end
end

-- One round: resume each coroutine once (stop_status: stop them instead, all or only those
-- never started); the jobs that finished are appended to `finished`.
local function round(self, finished, stop_status, only_unstarted)
  local running, keep = self._running, {}
  local limit = self._job_timeout
  for _, r in ipairs(running) do
    local status, value
    local now = self._core:now()
    if stop_status and not (only_unstarted and r.started) then
      coroutine.close(r.co)
      status, value = stop_status, "job cancelled"
    elseif limit and r.started and now - r.t0 > limit then
      coroutine.close(r.co)
      status, value = "TIMEOUT", "job stopped: it ran past job_timeout"
    elseif not stop_status then
      r.started = true
      local ok, pcall_ok, out = coroutine.resume(r.co)
      if not ok then status, value = "ERROR", debug.traceback(r.co, tostring(pcall_ok))
      elseif coroutine.status(r.co) == "dead" then
        if pcall_ok then status, value = "OK", out else status, value = "ERROR", out end
      end
    end
    if status then
      finished[#finished + 1] = self._core:complete(r.job, status, value, r.t0, self._core:now(), 0)
    else
      keep[#keep + 1] = r
    end
  end
  self._running = keep
end

function M.gather(self, type_, size)
  local finished = {}
  local target = type_ == "ALL" and #self._running or math.min(size, #self._running)
  repeat
    local left = self._core:time_left()
    round(self, finished, left and left <= 0 and "CANCELLED" or nil)
    core.reap_orphans()
    if #finished < target then core.sleep(NAP) end
  until #finished >= target
  return finished
end

-- close: without waiting, every job is cancelled (nothing would resume them); waiting, the jobs
-- never started are cancelled (cancel_jobs_on_exit) and the others resumed until they end.
function M.close(self, wait, cancel)
  local finished = {}
  if not wait then
    round(self, finished, "CANCELLED")
  else
    if cancel then round(self, finished, "CANCELLED", true) end
    while #self._running > 0 do
      round(self, finished)
      if #self._running > 0 then core.sleep(NAP) end
    end
  end
  self._core:close(false, true)
  return finished
end

return M
