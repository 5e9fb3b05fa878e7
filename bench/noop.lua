-- noop.lua: no-op jobs through the mpicomm evaluator.
-- usage: evaluator-lua bench/noop.lua MODE N
--   MODE "bulk":  one submit of N jobs, then gather("ALL")
--   MODE "async": keep every worker busy: submit num_workers, then gather("BATCH", 1) and submit as
--                 many as came back, until N are gathered
-- Rank 0 prints: NOOP mode=.. jobs=N seconds=S jobs_per_s=R
-- The jobs are checked and dropped after each gather (as a search that dumps jobs_done each time).
-- Every rank prints at its end: RSS rank=r hwm_kb=K (peak RSS, VmHWM of /proc/self/status)
local evaluator = require "evaluator"
local mode, N = arg[1] or "async", math.tointeger(tonumber(arg[2] or "10000"))

local function status_kb(field)
  local f = io.open("/proc/self/status")
  if not f then return -1 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)")) or -1
end

local function run(job) return job.parameters.x end

local function params(i) return { x = i, lr = 0.01, act = "relu" } end

do
  local ev <close> = evaluator.create(run, "mpicomm")
  if ev then
    local wtime = evaluator.mpi.wtime
    local gathered, bad = 0, 0
    local t0 = wtime()
    if mode == "bulk" then
      local list = {}
      for i = 1, N do list[i] = params(i) end
      ev:submit(list)
      local done = ev:gather("ALL")
      gathered = #done
      for _, job in ipairs(done) do if job.objective ~= job.parameters.x then bad = bad + 1 end end
      ev.jobs_done = {}
    elseif mode == "async" then
      local submitted = 0
      local first = {}
      for i = 1, math.min(ev.num_workers, N) do first[i] = params(i) end
      ev:submit(first)
      submitted = #first
      while gathered < N do
        local done = ev:gather("BATCH", 1)
        gathered = gathered + #done
        for _, job in ipairs(done) do if job.objective ~= job.parameters.x then bad = bad + 1 end end
        ev.jobs_done = {} -- as a search that dumps them after every gather (DeepHyper's does)
        local k = math.min(#done, N - submitted)
        if k > 0 then
          local list = {}
          for j = 1, k do list[j] = params(submitted + j) end
          submitted = submitted + k
          ev:submit(list)
        end
      end
    else
      error("unknown mode " .. tostring(mode))
    end
    local t = wtime() - t0
    if gathered ~= N or bad > 0 then error(("gathered %d of %d jobs, %d wrong"):format(gathered, N, bad)) end
    io.write(("NOOP mode=%s jobs=%d seconds=%.6f jobs_per_s=%.1f\n"):format(mode, N, t, N / t))
    io.stdout:flush()
  end
end
collectgarbage()
io.write(("RSS rank=%d hwm_kb=%d rss_kb=%d\n"):format(evaluator.mpi.rank(), status_kb("VmHWM"), status_kb("VmRSS")))
io.stdout:flush()
