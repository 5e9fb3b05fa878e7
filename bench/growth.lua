-- growth.lua: a long search: N no-op jobs in bulk chunks of C (one submit of C, then gather("ALL")),
-- dumping jobs_done to a CSV after every chunk. Watches the root's memory (VmRSS) and throughput.
-- usage: evaluator-lua bench/growth.lua N C DIR
-- Rank 0 prints one line per chunk: CHUNK i=k jobs=J t=S dump=S rss_kb=K
-- then: GROWTH jobs=N chunks=K rss10_kb=.. rss100_kb=.. rss_ratio=.. rate_first_jobs_per_s=..
--       rate_last_jobs_per_s=.. rate_ratio=.. seconds=.. dump_first=.. dump_last=.. (the CSV dumps'
--       share of the time in the first and the last tenth)
local evaluator = require "evaluator"
local N, C, DIR = math.tointeger(tonumber(arg[1] or "20000")), math.tointeger(tonumber(arg[2] or "1000")), arg[3] or "."

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return -1 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or -1
end

local function run(job) return job.parameters.x end

local ev <close> = evaluator.create(run, "mpicomm")
if ev then
  local wtime = evaluator.mpi.wtime
  local chunks = N // C
  local t, rss, dump = { [0] = wtime() }, {}, {}
  for k = 1, chunks do
    local list = {}
    local base = (k - 1) * C
    for i = 1, C do list[i] = { x = base + i, lr = 0.01, act = "relu" } end
    ev:submit(list)
    local done = ev:gather("ALL")
    if #done ~= C then error(("chunk %d: gathered %d of %d"):format(k, #done, C)) end
    local td = wtime()
    ev:dump_jobs_done_to_csv(DIR, "growth.csv")
    t[k], rss[k] = wtime(), rss_kb()
    dump[k] = t[k] - td
    io.write(("CHUNK i=%d jobs=%d t=%.6f dump=%.6f rss_kb=%d\n"):format(k, k * C, t[k] - t[0], dump[k], rss[k]))
  end
  -- The first and the last tenth of the chunks (at least one each). A tenth's rate is C over its
  -- median chunk time: a burst of load from elsewhere on the machine does not move it much.
  local tenth = math.max(1, chunks // 10)
  local function median_time(from, to)
    local d = {}
    for k = from, to do d[#d + 1] = t[k] - t[k - 1] end
    table.sort(d)
    local m = #d // 2
    return #d % 2 == 1 and d[m + 1] or (d[m] + d[m + 1]) / 2
  end
  local first_rate = C / median_time(1, tenth)
  local last_rate = C / median_time(chunks - tenth + 1, chunks)
  -- The share of the CSV dumps in each tenth.
  local dump_first, dump_last = 0, 0
  for k = 1, tenth do dump_first = dump_first + dump[k] end
  for k = chunks - tenth + 1, chunks do dump_last = dump_last + dump[k] end
  io.write(("GROWTH jobs=%d chunks=%d rss10_kb=%d rss100_kb=%d rss_ratio=%.4f rate_first_jobs_per_s=%.1f "
    .. "rate_last_jobs_per_s=%.1f rate_ratio=%.4f seconds=%.3f dump_first=%.4f dump_last=%.4f\n"):format(
    chunks * C, chunks, rss[tenth], rss[chunks], rss[chunks] / rss[tenth], first_rate, last_rate,
    last_rate / first_rate, t[chunks] - t[0], dump_first / (t[tenth] - t[0]), dump_last / (t[chunks] - t[chunks - tenth])))
  io.stdout:flush()
end
