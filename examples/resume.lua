-- resume.lua: a random search kept in an SQLite file, which survives Ctrl-C, kill -9 or a lost node
-- and is resumed by running the same command with the search's id.
--
--   mpirun -np 4 evaluator-lua examples/resume.lua search.db         starts search "0" (prints its id)
--   mpirun -np 4 evaluator-lua examples/resume.lua search.db 0       continues search "0"
--   evaluator-lua export search.db --search-id 0 -o all.csv          every finished job, as CSV
--
-- Every rank runs this script, so every rank opens the file: that is safe with any number of
-- processes. Only the root (where `ev` is not nil) writes to it.
local evaluator = require "evaluator"

local path = arg[1] or "search.db"
local search_id = arg[2] ~= "" and arg[2] or nil -- "": a new search (to give arg[3])
local MAX_EVALS = tonumber(arg[3]) or 200

local function run(job)
  local p = job.parameters
  local t = evaluator.mpi.wtime() + 0.01 -- a 10 ms "training"
  while evaluator.mpi.wtime() < t do end
  return -(p.x - 2) ^ 2 - (p.y + 1) ^ 2
end

local store = evaluator.SQLiteStorage(path)
local ev <close> = evaluator.create(run, "mpicomm", { storage = store, search_id = search_id })
if ev then
  io.stderr:write(("search %s in %s (resume it with: evaluator-lua examples/resume.lua %s %s)\n")
    :format(ev.search_id, path, path, ev.search_id))
  local best, finished = -math.huge, 0
  local function account(jobs)
    for _, job in ipairs(jobs) do
      finished = finished + 1
      if type(job.objective) == "number" and job.objective > best then best = job.objective end
    end
  end
  -- What earlier runs finished: returned once, here (gather's second value would return it too).
  account(ev:gather_other_jobs_done())
  -- What earlier runs submitted and never finished: submit the same parameters tables again, which
  -- marks them resubmitted (a later resume does not list them twice).
  local again = {}
  for i, job in ipairs(ev:unfinished_jobs()) do again[i] = job.parameters end
  if #again > 0 then ev:submit(again) end
  local rng = math.random
  local function sample(k)
    local list = {}
    for i = 1, k do list[i] = { x = rng() * 8 - 4, y = rng() * 8 - 4 } end
    return list
  end
  local outstanding = ev.num_jobs_submitted - ev.num_jobs_gathered
  local fresh = math.min(ev.num_workers, MAX_EVALS - finished) - outstanding
  if fresh > 0 then ev:submit(sample(fresh)) end
  local ok, err = pcall(function()
    while finished < MAX_EVALS and ev.num_jobs_submitted > ev.num_jobs_gathered do
      local done = ev:gather("BATCH", 1) -- stored before it returns: kill -9 now loses none of them
      account(done)
      local room = MAX_EVALS - finished - (ev.num_jobs_submitted - ev.num_jobs_gathered)
      if room > 0 then ev:submit(sample(math.min(#done, room))) end
      ev:dump_jobs_done_to_csv(".", "results.csv")
    end
  end)
  ev:close() -- after Ctrl-C: the cancelled jobs come back, stored (status "CANCELLED"), into jobs_done
  ev:dump_jobs_done_to_csv(".", "results.csv")
  io.stderr:write(("%d jobs finished, best objective %.6g\n"):format(finished, best))
  if not ok then error(err, 0) end
end
