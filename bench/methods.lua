-- methods.lua: the four methods side by side, 2 workers each (run without mpirun, except mpicomm,
-- which runs under mpirun -np 3).
-- usage: evaluator-lua bench/methods.lua METHOD noop N       -> METHODS method=M noop_jobs_per_s=R
--        evaluator-lua bench/methods.lua METHOD cpu N SECONDS -> METHODS method=M cpu_wall=S
--   cpu: N CPU-bound jobs of about SECONDS each; the serial wall time over a method's is how many
--   cores its 2 workers really used (2 on this 2-core machine when both run at once).
local evaluator = require "evaluator"
local method, mode, N, SECONDS = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4] or "0.2")

local function spin(n)
  local x = 0
  for i = 1, n do x = x + (i % 7) * 0.5 end
  return x
end
local n = 100000
local t = os.clock()
spin(n)
n = math.floor(n * SECONDS / math.max(os.clock() - t, 1e-6))

local function run(job)
  if job.parameters.n then return spin(job.parameters.n) end
  return job.parameters.x
end

local ev <close> = evaluator.create(run, method, method ~= "serial" and { num_workers = 2 } or nil)
if ev then
  local list = {}
  for i = 1, N do list[i] = mode == "cpu" and { n = n } or { x = i } end
  local t0 = evaluator.mpi.wtime()
  ev:submit(list)
  local done = ev:gather("ALL")
  local wall = evaluator.mpi.wtime() - t0
  assert(#done == N)
  if mode == "cpu" then
    print(("METHODS method=%s cpu_wall=%.4f"):format(method, wall))
  else
    print(("METHODS method=%s noop_jobs_per_s=%.1f"):format(method, N / wall))
  end
end
