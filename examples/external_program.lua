-- external_program.lua: an objective that runs an external program through io.popen, under
-- job_timeout: a job whose command runs too long is stopped (its process group is killed) and
-- comes back "CANCELLED" with objective "F_TIMEOUT"; the search goes on.
-- Run: mpirun -np 3 evaluator-lua examples/external_program.lua [max_evals]
local evaluator = require "evaluator"
local search = require "evaluator.search"
local callbacks = require "evaluator.callbacks"

local MAX_EVALS = tonumber(arg[1]) or 20

-- The "program": sleeps `delay` seconds, then prints -(x - 2)^2 (awk stands for a simulator).
local function run(job)
  local p = job.parameters
  local cmd = ("sleep %.3f && awk 'BEGIN { printf \"%%.17g\\n\", -(%.17g - 2)^2 }'"):format(p.delay, p.x)
  local proc = assert(io.popen(cmd, "r"))
  local out = proc:read("a")
  local ok, _, code = proc:close()
  if not ok then return ("F_EXIT_%s"):format(tostring(code)) end
  return tonumber(out) or "F_PARSE"
end

local space = { x = search.uniform(-5, 5), delay = search.choice{ 0.05, 0.1, 5 } }

local ev <close> = evaluator.create(run, "mpicomm", { job_timeout = 1, callbacks = { callbacks.Logger() } })
if ev then
  local best, jobs = search.random(ev, space, { max_evals = MAX_EVALS, seed = 3, csv = "results.csv" })
  local timeouts = 0
  for _, job in ipairs(jobs) do
    if job.objective == "F_TIMEOUT" then timeouts = timeouts + 1 end
  end
  print(("%d jobs, %d stopped by job_timeout; best objective %.4f at x = %.4f"):format(#jobs, timeouts,
    best.objective, best.parameters.x))
end
