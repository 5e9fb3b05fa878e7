-- scale.lua: scheduling efficiency of any method with any number of workers (bench/run.sh's rows
-- sized by nproc). N jobs that each spin for DUR seconds, one submit and gather("ALL");
-- efficiency = sum of (timestamp_end - timestamp_start) / (num_workers x makespan), the makespan
-- from the first submit to the last gather on the root's clock.
-- usage: evaluator-lua bench/scale.lua METHOD WORKERS N DUR   (mpicomm: under mpirun, WORKERS is
--        ignored: the ranks but the root are the workers)
-- Prints (the root): SCALE method=M workers=W jobs=N dur=D makespan=S efficiency=E
local evaluator = require "evaluator"
local method, W = arg[1] or "mpicomm", math.tointeger(tonumber(arg[2] or "2"))
local N, DUR = math.tointeger(tonumber(arg[3] or "100")), tonumber(arg[4] or "0.01")

local wtime = evaluator.mpi.wtime
local function run(job)
  local stop = wtime() + job.parameters.dur
  while wtime() < stop do end
  return job.parameters.x
end

local ev <close> = evaluator.create(run, method, method ~= "mpicomm" and { num_workers = W } or nil)
if ev then
  local list = {}
  for i = 1, N do list[i] = { x = i, dur = DUR } end
  ev:submit(list)
  local all = ev:gather("ALL")
  assert(#all == N, "gathered " .. #all .. " of " .. N)
  local first, last, busy = math.huge, -math.huge, 0
  for _, job in ipairs(all) do
    local m = job.metadata
    assert(job.objective == job.parameters.x, "job " .. job.id .. " failed: " .. tostring(job.objective))
    first = math.min(first, m.timestamp_submit)
    last = math.max(last, m.timestamp_gather)
    busy = busy + (m.timestamp_end - m.timestamp_start)
  end
  local makespan = last - first
  io.write(("SCALE method=%s workers=%d jobs=%d dur=%g makespan=%.6f efficiency=%.6f\n"):format(
    method, ev.num_workers, N, DUR, makespan, busy / (ev.num_workers * makespan)))
  io.stdout:flush()
end
