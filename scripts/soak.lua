-- soak.lua: one soak run (scripts/soak.sh starts it once per method, and twice at once for mpicomm).
--   evaluator-lua scripts/soak.lua METHOD JOBS CSV DB OUT [NAME]
-- Pushes JOBS jobs through METHOD with random failures, stops by job_timeout, crashes (process),
-- and a budget that runs out on a last batch (cancels); with two evaluators (A and B, one after the
-- other in each round) dumping into the one CSV and storing into the one SQLite file; for mpicomm a
-- single evaluator (NAME), as two such runs go at once. Writes to OUT, as Lua source, each
-- evaluator's search id, the number of jobs it gathered and dumped, and the RSS halfway and at
-- the end.
local evaluator = require "evaluator"
local method, total, csv, db, out, name = arg[1], math.tointeger(tonumber(arg[2])), arg[3], arg[4], arg[5], arg[6]

local function rss_kb()
  local f = io.open("/proc/self/status")
  local kb = f and tonumber(f:read("a"):match("VmRSS:%s*(%d+)")) or 0
  if f then f:close() end
  return kb
end

local function run(job)
  local p = job.parameters
  if p.kind == "fail" then error("planned failure " .. p.i) end
  if p.kind == "slow" then local t = evaluator.mpi.wtime() + 1; while evaluator.mpi.wtime() < t do local _ = {} end end
  if p.kind == "crash" then os.exit(3) end
  if p.kind == "F" then return "F_planned" end
  return { objective = p.i * 0.5, metadata = { kind = p.kind, note = (p.i % 7 == 0) and "a,\"quoted\"\nnote" or nil } }
end

local names = method == "mpicomm" and { name or "A" } or { "A", "B" }
local store = evaluator.SQLiteStorage(db)
local evs, stats = {}, {}
for k, n in ipairs(names) do
  local sid = store:create_new_search()
  evs[k] = evaluator.create(run, method, { num_workers = 2, job_timeout = 0.05, storage = store, search_id = sid })
  stats[k] = { name = method .. "-" .. n, search_id = sid, gathered = 0, dumped = 0 }
end
if not evs[1] then return end -- a worker rank, after the root closed

math.randomseed(tonumber(os.getenv("SOAK_SEED")) or 7)
local function kind()
  local r = math.random()
  if r < 0.01 then return "fail" end
  if r < 0.012 then return "F" end
  if r < 0.0125 then return "slow" end
  if method == "process" and r < 0.0128 then return "crash" end
  return "ok"
end

local per = total // #evs
local BATCH, DUMP_EVERY = 500, 5000
local next_i, rss_first = 0, nil
local function round(k, size)
  local ev, st = evs[k], stats[k]
  local batch = {}
  for j = 1, size do
    next_i = next_i + 1
    batch[j] = { i = next_i, src = st.name, kind = kind() }
  end
  ev:submit(batch)
  st.gathered = st.gathered + #ev:gather("ALL")
  if #ev.jobs_done >= DUMP_EVERY then
    st.dumped = st.dumped + #ev.jobs_done
    ev:dump_jobs_done_to_csv({ log_dir = ".", filename = csv })
  end
end
local done = 0
while done < per do
  local size = math.min(BATCH, per - done)
  for k = 1, #evs do round(k, size) end
  done = done + size
  -- The first half warms up what stays: SQLite's page cache, Lua's heap high-water mark, the CSV
  -- writer's buffers; memory is flat when the second half adds (next to) nothing.
  if not rss_first and done >= per // 2 then collectgarbage(); rss_first = rss_kb() end
end
-- The cancels: a budget that runs out while a last batch of slow jobs runs and waits.
for k, ev in ipairs(evs) do
  local batch = {}
  for j = 1, 20 do next_i = next_i + 1; batch[j] = { i = next_i, src = stats[k].name, kind = "slow" } end
  ev:set_timeout(0.2)
  ev:submit(batch)
  local back = ev:gather("ALL")
  stats[k].gathered = stats[k].gathered + #back
  for _, j in ipairs(back) do if j.status == "CANCELLED" then stats[k].cancelled = (stats[k].cancelled or 0) + 1 end end
  stats[k].dumped = stats[k].dumped + #ev.jobs_done
  ev:dump_jobs_done_to_csv({ log_dir = ".", filename = csv })
  ev:close()
end
collectgarbage()
local f = assert(io.open(out, "w"))
f:write("return { rss_first = ", rss_first or 0, ", rss_last = ", rss_kb(), ", evaluators = {\n")
for _, st in ipairs(stats) do
  f:write(("  { name = %q, search_id = %q, gathered = %d, dumped = %d, cancelled = %d },\n"):format(
    st.name, st.search_id, st.gathered, st.dumped, st.cancelled or 0))
end
f:write("} }\n")
f:close()
