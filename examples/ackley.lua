-- ackley.lua: a driver of evaluator.search on the Ackley function in 5 dimensions, with a live
-- progress line, a CSV of every job and early stopping.
-- Run: mpirun -np 4 evaluator-lua examples/ackley.lua [random|evolution|tpe] [max_evals] [seconds per job]
-- then: evaluator-lua plot results.csv -o run.png
local evaluator = require "evaluator"
local search = require "evaluator.search"
local callbacks = require "evaluator.callbacks"

local DRIVER, MAX_EVALS, WORK = arg[1] or "tpe", tonumber(arg[2]) or 200, tonumber(arg[3]) or 0.01
local DIM = 5

-- The objective: -ackley(x), maximised; the optimum is 0 at x = 0. WORK seconds of busy work per
-- job stand for a real objective's cost, so that the picture shows the workers at work.
local function run(job)
  local t_end = evaluator.mpi.wtime() + WORK
  while evaluator.mpi.wtime() < t_end do end
  local sum_sq, sum_cos = 0, 0
  for i = 1, DIM do
    local x = job.parameters["x" .. i]
    sum_sq, sum_cos = sum_sq + x * x, sum_cos + math.cos(2 * math.pi * x)
  end
  return -(-20 * math.exp(-0.2 * math.sqrt(sum_sq / DIM)) - math.exp(sum_cos / DIM) + 20 + math.exp(1))
end

local space = {}
for i = 1, DIM do space["x" .. i] = search.uniform(-32.768, 32.768) end

local ev <close> = evaluator.create(run, "mpicomm", {
  callbacks = { callbacks.Progress(), callbacks.SearchEarlyStopping{ patience = 150 } },
})
if ev then
  local best, jobs = search[DRIVER](ev, space, { max_evals = MAX_EVALS, seed = 42, csv = "results.csv" })
  print(("%s: %d jobs on %d workers; best objective %.6f (job %s)"):format(DRIVER, #jobs, ev.num_workers,
    best.objective, best.id))
  for i = 1, DIM do io.write(("  x%d = %.4f"):format(i, best.parameters["x" .. i])) end
  print()
end
