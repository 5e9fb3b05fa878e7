-- storage.lua: the async search loop (gather("BATCH", 1) + resubmit, no-op jobs, mpicomm) with no
-- storage, with SQLiteStorage and with RedisStorage, in turn in one mpirun, ROUNDS times each,
-- each round starting with the next kind (none, sqlite, redis; sqlite, redis, none; ...), so that
-- the ratios compare runs of the same moment and no kind always follows the same one; each takes
-- its fastest round. 3 ranks on 2 cores: a round's speed depends on where the scheduler puts the
-- ranks (the root alone on a core, or sharing one with a spinning worker: about 1.6x apart), and
-- 6 rounds give each kind its fast placement at least once in most runs (3 did not for SQLite in
-- about half of them).
-- usage: mpirun -np 3 evaluator-lua bench/storage.lua N DB_PATH REDIS_PORT [IN_FLIGHT (64)] [ONLY] [ROUNDS (6)]
-- Rank 0 prints: STORAGE jobs=N none=R sqlite=R redis=R sqlite_ratio=X redis_ratio=Y (R in jobs/s)
-- ONLY (none, sqlite or redis) runs that loop alone, to profile it (callgrind): ONLY=R and the
-- jobs per gather are printed.
local evaluator = require "evaluator"
local N = math.tointeger(tonumber(arg[1] or "20000"))
local IN_FLIGHT = math.tointeger(tonumber(arg[4] or "64")) -- jobs kept submitted, as a search keeps its workers fed
local db_path, redis_port = arg[2] or "bench-storage.db", math.tointeger(tonumber(arg[3] or "6379"))

local function run(job) return job.parameters.x end

-- One search of N jobs; returns jobs/s and the number of gathers on the root, nil on the other ranks.
local function loop(storage)
  local ev <close> = evaluator.create(run, "mpicomm", { storage = storage })
  if not ev then return nil end
  local wtime = evaluator.mpi.wtime
  local t0 = wtime()
  local first = {}
  for i = 1, IN_FLIGHT do first[i] = { x = i, lr = 0.01, act = "relu" } end
  ev:submit(first)
  local submitted, gathered, gathers = #first, 0, 0
  while gathered < N do
    local done = ev:gather("BATCH", 1)
    gathers = gathers + 1
    gathered = gathered + #done
    ev.jobs_done = {} -- as a search that dumps them after every gather
    local k = math.min(#done, N - submitted)
    if k > 0 then
      local list = {}
      for j = 1, k do list[j] = { x = submitted + j, lr = 0.01, act = "relu" } end
      submitted = submitted + k
      ev:submit(list)
    end
  end
  local rate = N / (wtime() - t0)
  if storage and #storage:load_all_job_ids(ev.search_id) ~= N then
    error(("the storage holds %d jobs of %d"):format(#storage:load_all_job_ids(ev.search_id), N))
  end
  return rate, gathers
end

-- Every rank opens the storages (as every rank runs a user's script); only the root writes.
local only = arg[5] ~= "" and arg[5] or nil
if only then
  local open = { none = function() return nil end, sqlite = function() return evaluator.SQLiteStorage(db_path) end,
    redis = function() return evaluator.RedisStorage { host = "127.0.0.1", port = redis_port } end }
  if not open[only] then error(("ONLY must be none, sqlite or redis, got '%s'"):format(only)) end
  local rate, gathers = loop(open[only]())
  if rate then print(("%s=%.1f jobs_per_gather=%.1f"):format(only, rate, N / gathers)) end
  return
end
local stores = { sqlite = evaluator.SQLiteStorage(db_path), redis = evaluator.RedisStorage { host = "127.0.0.1", port = redis_port } }
local best = {}
local KINDS = { "none", "sqlite", "redis" }
for round = 1, math.tointeger(tonumber(arg[6] or "6")) do
  for i = 1, #KINDS do
    local kind = KINDS[(round + i - 2) % #KINDS + 1] -- each round starts with the next kind: none follows each
    local rate = loop(stores[kind])
    if rate then best[kind] = math.max(best[kind] or 0, rate) end
  end
end
local none, sqlite, redis = best.none, best.sqlite, best.redis
if none then
  io.write(("STORAGE jobs=%d none=%.1f sqlite=%.1f redis=%.1f sqlite_ratio=%.4f redis_ratio=%.4f\n")
    :format(N, none, sqlite, redis, sqlite / none, redis / none))
  io.stdout:flush()
end
