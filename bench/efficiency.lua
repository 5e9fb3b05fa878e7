-- efficiency.lua: what bench/sched.lua and bench/scale.lua share: a job that spins for
-- job.parameters.dur seconds, and the scheduling efficiency of the jobs that came back.
local evaluator = require "evaluator"

local M = {}
local wtime = evaluator.mpi.wtime

--- The run function: spins until dur seconds have passed (a worker's core kept busy), returns x.
function M.run(job)
  local stop = wtime() + job.parameters.dur
  while wtime() < stop do end
  return job.parameters.x
end

--- sum over jobs of (timestamp_end - timestamp_start) / (workers x makespan), the makespan from
--- the first submit to the last gather (the root's clock). Fails on a job that did not return x.
--- Returns { first =, last =, busy =, makespan =, efficiency = }.
function M.measure(jobs, workers)
  local first, last, busy = math.huge, -math.huge, 0
  for _, job in ipairs(jobs) do
    local m = job.metadata
    assert(job.objective == job.parameters.x, "job " .. job.id .. " failed: " .. tostring(job.objective))
    first = math.min(first, m.timestamp_submit)
    last = math.max(last, m.timestamp_gather)
    busy = busy + (m.timestamp_end - m.timestamp_start)
  end
  local makespan = last - first
  return { first = first, last = last, busy = busy, makespan = makespan, efficiency = busy / (workers * makespan) }
end

return M
