-- rootcpu.lua: the root's CPU time as a fraction of the wall time while every worker runs 1 s jobs.
-- usage: evaluator-lua bench/rootcpu.lua NJOBS SECONDS
-- The jobs sleep (os.execute("sleep S")), so the workers leave the cores free and the root's own
-- spinning, if any, would show in full. Rank 0 prints: ROOTCPU jobs=N wall=S cpu=S fraction=F
local evaluator = require "evaluator"
local N, S = math.tointeger(tonumber(arg[1] or "6")), tonumber(arg[2] or "1")

local function run(job)
  local ok = os.execute(("sleep %g"):format(job.parameters.s))
  if not ok then error("sleep failed") end
  return job.parameters.x
end

local ev <close> = evaluator.create(run, "mpicomm")
if ev then
  local list = {}
  for i = 1, N do list[i] = { x = i, s = S } end
  local wtime = evaluator.mpi.wtime
  local c0, t0 = os.clock(), wtime()
  ev:submit(list)
  local done = ev:gather("ALL")
  local c1, t1 = os.clock(), wtime()
  for _, job in ipairs(done) do
    if job.objective ~= job.parameters.x then error("job " .. job.id .. " failed: " .. tostring(job.objective)) end
  end
  io.write(("ROOTCPU jobs=%d workers=%d wall=%.6f cpu=%.6f fraction=%.6f\n"):format(
    #done, ev.num_workers, t1 - t0, c1 - c0, (c1 - c0) / (t1 - t0)))
  io.stdout:flush()
end
