-- drivers.lua: search.random, search.evolution and search.tpe side by side on Ackley 5-D and
-- Rosenbrock 5-D (minimised: the objective is -f), the serial method (the functions are cheap).
-- usage: evaluator-lua bench/drivers.lua [EVALS [SEEDS]]
--   prints per function F (ackley, rosenbrock) the median over the seeds of the best f found:
--   DRIVERS_F random=M evolution=M tpe=M ratio_evolution=R ratio_tpe=R seconds=T
--   (ratio: random's median best / the driver's; above 1 is better than random search)
local evaluator = require "evaluator"
local search = require "evaluator.search"

local EVALS, SEEDS = tonumber(arg[1]) or 500, tonumber(arg[2]) or 10
local DIM = 5

local functions = {
  ackley = {
    bound = 32.768,
    f = function(x)
      local sq, cs = 0, 0
      for i = 1, DIM do sq, cs = sq + x[i] * x[i], cs + math.cos(2 * math.pi * x[i]) end
      return -20 * math.exp(-0.2 * math.sqrt(sq / DIM)) - math.exp(cs / DIM) + 20 + math.exp(1)
    end,
  },
  rosenbrock = {
    bound = 5,
    f = function(x)
      local s = 0
      for i = 1, DIM - 1 do s = s + 100 * (x[i + 1] - x[i] ^ 2) ^ 2 + (1 - x[i]) ^ 2 end
      return s
    end,
  },
}

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

for _, fname in ipairs({ "ackley", "rosenbrock" }) do
  local fn = functions[fname]
  local dims = {}
  for i = 1, DIM do dims["x" .. i] = search.uniform(-fn.bound, fn.bound) end
  local function run(job)
    local x = {}
    for i = 1, DIM do x[i] = job.parameters["x" .. i] end
    return -fn.f(x)
  end
  local medians, t0 = {}, evaluator.mpi.wtime()
  for _, driver in ipairs({ "random", "evolution", "tpe" }) do
    local bests = {}
    for seed = 1, SEEDS do
      local ev <close> = evaluator.create(run, "serial")
      local best = search[driver](ev, dims, { max_evals = EVALS, seed = seed })
      bests[seed] = -best.objective
    end
    medians[driver] = median(bests)
  end
  print(("DRIVERS_%s random=%.6g evolution=%.6g tpe=%.6g ratio_evolution=%.4g ratio_tpe=%.4g seconds=%.1f"):format(fname,
    medians.random, medians.evolution, medians.tpe, medians.random / medians.evolution, medians.random / medians.tpe,
    evaluator.mpi.wtime() - t0))
end
