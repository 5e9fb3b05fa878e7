-- random_search.lua: an asynchronous random search of the Ackley function in 4 dimensions.
-- Every worker is kept busy: gather("BATCH", 1) returns what is done, and as many new points are
-- submitted as came back. Run: mpirun -np 4 evaluator-lua examples/random_search.lua [num_jobs]
local evaluator = require "evaluator"

local DIM = 4
local NUM_JOBS = tonumber(arg[1]) or 200

-- The objective: maximise -ackley(x) (DeepHyper maximises); the optimum is 0 at x = 0.
local function run(job)
  local p, sum_sq, sum_cos = job.parameters, 0, 0
  for i = 1, DIM do
    local x = p["x" .. i]
    sum_sq = sum_sq + x * x
    sum_cos = sum_cos + math.cos(2 * math.pi * x)
  end
  local ackley = -20 * math.exp(-0.2 * math.sqrt(sum_sq / DIM)) - math.exp(sum_cos / DIM) + 20 + math.exp(1)
  return -ackley
end

local function sample()
  local point = {}
  for i = 1, DIM do point["x" .. i] = math.random() * 65.536 - 32.768 end
  return point
end

local ev <close> = evaluator.create(run, "mpicomm")
if ev then
  math.randomseed(42)
  local batch = {}
  for i = 1, ev.num_workers do batch[i] = sample() end
  ev:submit(batch)
  local best
  while ev.num_jobs_gathered < NUM_JOBS do
    local done = ev:gather("BATCH", 1)
    for _, job in ipairs(done) do
      if type(job.objective) == "number" and (not best or job.objective > best.objective) then best = job end
    end
    local room = NUM_JOBS - ev.num_jobs_submitted
    local new = {}
    for i = 1, math.min(#done, room) do new[i] = sample() end
    if #new > 0 then ev:submit(new) end
  end
  ev:dump_jobs_done_to_csv(".", "results.csv")
  print(("%d jobs on %d workers; best objective %.6f at job %s:"):format(ev.num_jobs_gathered, ev.num_workers,
    best.objective, best.id))
  for i = 1, DIM do io.write(("  x%d = %.4f"):format(i, best.parameters["x" .. i])) end
  print()
end
