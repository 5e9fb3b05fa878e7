-- interrupt.lua: what stopping jobs for real costs jobs that are not stopped (issue: <= 2 %).
-- usage: evaluator-lua bench/interrupt.lua NOOP_JOBS CPU_JOBS CPU_SECONDS
--   noop: the same no-op jobs with no budget, then with job_timeout and set_timeout: jobs/s ratio
--   cpu:  a CPU-bound Lua loop run directly on each worker rank (no job, no guard), then as jobs
--         under job_timeout and set_timeout (the ticker looks at them every 20 ms and, under
--         mpicomm, has them look for a cancel message): the ratio of their median durations
-- Rank 0 prints: INTERRUPT noop_ratio=R cpu_ratio=R direct_s=S job_s=S
local evaluator = require "evaluator"
local NOOP, NCPU, SECONDS = tonumber(arg[1] or "50000"), tonumber(arg[2] or "8"), tonumber(arg[3] or "0.2")

-- The loop: calibrated once per rank to take about SECONDS.
local function spin(n)
  local x = 0
  for i = 1, n do x = x + (i % 7) * 0.5 end
  return x
end
local function clock(f, ...) local t = os.clock(); f(...); return os.clock() - t end
local n = 100000
while clock(spin, n) < SECONDS / 4 do n = n * 2 end
n = math.floor(n * SECONDS / clock(spin, n))

local function median(t) table.sort(t); return t[(#t + 1) // 2] end

-- Direct: on every rank, the loop alone (the workers' figure is sent back through a job below).
local direct = {}
for i = 1, 5 do direct[i] = clock(spin, n) end
local my_direct = median(direct)

local function noop(job) return job.parameters.x end
-- Both sides in CPU seconds of the rank (os.clock): the wall clock of an oversubscribed rank
-- counts the time other ranks had its core.
local function cpu(job)
  if job.parameters.direct then return my_direct end
  return clock(spin, job.parameters.n)
end

local function noop_rate(kw, budget)
  local ev <close> = evaluator.create(noop, "mpicomm", kw)
  if not ev then return end
  if budget then ev:set_timeout(budget) end
  local list = {}
  for i = 1, NOOP do list[i] = { x = i } end
  local t = evaluator.mpi.wtime()
  ev:submit(list)
  ev:gather("ALL")
  return NOOP / (evaluator.mpi.wtime() - t)
end

-- Alternated, medians of three: the first evaluator of a run also pays for warming up.
local plains, guardeds = {}, {}
for i = 1, 3 do
  plains[i] = noop_rate({})
  guardeds[i] = noop_rate({ job_timeout = 3600 }, 3600)
end
local plain, guarded = plains[1] and median(plains), guardeds[1] and median(guardeds)

local ev <close> = evaluator.create(cpu, "mpicomm", { job_timeout = 3600 })
if ev then
  ev:set_timeout(3600)
  local w = ev.num_workers
  local list = {}
  for i = 1, w do list[i] = { direct = true } end
  ev:submit(list)
  local directs = {}
  for _, job in ipairs(ev:gather("ALL")) do directs[#directs + 1] = job.output end
  list = {}
  for i = 1, NCPU do list[i] = { n = n } end
  ev:submit(list)
  local took = {}
  for _, job in ipairs(ev:gather("ALL")) do took[#took + 1] = job.output end
  local d, j = median(directs), median(took)
  print(("INTERRUPT noop_ratio=%.4f cpu_ratio=%.4f direct_s=%.4f job_s=%.4f noop_plain=%.0f noop_guarded=%.0f")
    :format(guarded / plain, j / d, d, j, plain, guarded))
end
