-- csv.lua: the cost of dump_jobs_done_to_csv on real jobs (bench/run.sh's CSV row).
-- usage: evaluator-lua bench/csv.lua N FILE [REPS]
--   Runs N no-op jobs with 4 float parameters under the serial method (11 columns: 4 parameters,
--   objective, job_id, m:rank and 4 timestamps), then dumps them to FILE REPS times (default 1; the
--   file is removed before each dump, so every dump writes a header and N rows) and prints the fastest:
--   CSV rows=N seconds=S rows_per_s=R
-- Under callgrind, --toggle-collect=l_csv_dump counts the instructions of the dumps alone.
local evaluator = require "evaluator"
local N = math.tointeger(tonumber(arg[1] or "100000"))
local FILE = assert(arg[2], "usage: bench/csv.lua N FILE [REPS]")
local REPS = math.tointeger(tonumber(arg[3] or "1"))
local dir, name = FILE:match("^(.*)/([^/]+)$")
if not dir then dir, name = ".", FILE end

local function run(job)
  local p = job.parameters
  return p.x0 * p.x1 - p.x2 + p.x3
end

math.randomseed(13)
local ev <close> = evaluator.create(run, "serial")
local list = {}
for i = 1, N do
  list[i] = { x0 = math.random(), x1 = math.random() * 100, x2 = math.random() - 0.5, x3 = math.random() * 1e-3 }
end
ev:submit(list)
local done = ev:gather("ALL")
assert(#done == N, "gathered " .. #done .. " of " .. N)
local best = math.huge
for _ = 1, REPS do
  os.remove(FILE)
  ev.jobs_done = done
  local t0 = evaluator.mpi.wtime()
  ev:dump_jobs_done_to_csv(dir, name)
  best = math.min(best, evaluator.mpi.wtime() - t0)
end
io.write(("CSV rows=%d seconds=%.6f rows_per_s=%.1f\n"):format(N, best, N / best))
