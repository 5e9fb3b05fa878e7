-- subprocess_backend.lua: a custom backend. Each job runs as a shell command started with io.popen
-- in the background; its coroutine yields until the command's result file appears, so several
-- commands run at once while the driver gathers. Run: evaluator-lua examples/subprocess_backend.lua
local evaluator = require "evaluator"

local SubprocessEvaluator = evaluator.Evaluator:extend("SubprocessEvaluator")

local tmpdir = os.getenv("TMPDIR") or "/tmp"

-- execute runs in a coroutine of its own for each job: it may yield while it waits.
function SubprocessEvaluator:execute(job)
  local command = self.run_function(job, self.run_function_kwargs) -- the run function builds a command
  local out = ("%s/evaluator-job-%d-%s"):format(tmpdir, math.random(1 << 30), job.id)
  -- The status file appears whole (written aside, then renamed), so it is never read half-written.
  local launcher = io.popen(("{ (%s) > %s.out 2>&1; echo $? > %s.tmp; mv %s.tmp %s.done; } &")
    :format(command, out, out, out, out))
  launcher:close()
  local done
  repeat
    coroutine.yield()
    done = io.open(out .. ".done")
  until done
  local status = tonumber(done:read("l"))
  done:close()
  local text = assert(io.open(out .. ".out")):read("a")
  os.remove(out .. ".out")
  os.remove(out .. ".done")
  if status ~= 0 then return ("F_EXIT_%d"):format(status) end
  return tonumber(text) or "F_PARSE"
end

-- The run function turns parameters into a command whose output is the objective.
local function command_for(job)
  return ("sleep %.2f; echo %.17g"):format(job.parameters.t, -(job.parameters.x - 1) ^ 2)
end

local ev <close> = SubprocessEvaluator.new(command_for, { num_workers = 4 })
local t0 = evaluator.mpi.wtime()
local jobs = {}
for i = 1, 8 do jobs[i] = { x = i / 4, t = 0.5 } end
ev:submit(jobs)
local done = ev:gather("ALL")
table.sort(done, function(a, b) return a.objective > b.objective end)
print(("%d jobs of 0.5 s in %.2f s; best x = %.2f (objective %g)"):format(#done, evaluator.mpi.wtime() - t0,
  done[1].parameters.x, done[1].objective))
ev:dump_jobs_done_to_csv(".", "subprocess_results.csv")
