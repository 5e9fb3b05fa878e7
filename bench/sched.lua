-- sched.lua: scheduling efficiency. N jobs that each spin for DUR seconds (until evaluator.mpi.wtime()
-- passes start + DUR) on the workers; efficiency = sum over jobs of (timestamp_end - timestamp_start)
-- / (num_workers x makespan), the makespan from the first submit to the last gather (the jobs'
-- timestamp_submit and timestamp_gather, on the root's clock).
-- usage: evaluator-lua bench/sched.lua MODE N DUR
--   MODE "bulk": one submit of N jobs, then gather("ALL")
--   MODE "async": submit num_workers, then gather("BATCH", 1) and resubmit as many as came back
-- Rank 0 prints: SCHED mode=.. jobs=N workers=W makespan=S busy=S efficiency=E
local evaluator = require "evaluator"
local mode, N, DUR = arg[1] or "bulk", math.tointeger(tonumber(arg[2] or "200")), tonumber(arg[3] or "0.01")

package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local efficiency = require "efficiency" -- bench/efficiency.lua, beside this script

local ev <close> = evaluator.create(efficiency.run, "mpicomm")
if ev then
  local all = {}
  local function take(done) for _, job in ipairs(done) do all[#all + 1] = job end end
  if mode == "bulk" then
    local list = {}
    for i = 1, N do list[i] = { x = i, dur = DUR } end
    ev:submit(list)
    take(ev:gather("ALL"))
  else
    local list = {}
    for i = 1, math.min(ev.num_workers, N) do list[i] = { x = i, dur = DUR } end
    ev:submit(list)
    local submitted = #list
    while #all < N do
      local done = ev:gather("BATCH", 1)
      take(done)
      list = {}
      for i = 1, math.min(#done, N - submitted) do list[i] = { x = submitted + i, dur = DUR } end
      submitted = submitted + #list
      if #list > 0 then ev:submit(list) end
    end
  end
  assert(#all == N, "gathered " .. #all .. " of " .. N)
  local e = efficiency.measure(all, ev.num_workers)
  local first, last, busy, makespan = e.first, e.last, e.busy, e.makespan
  -- Where the idle worker time went: before each worker's first job, between its jobs, after its
  -- last one (until the last gather); as fractions of num_workers x makespan.
  local per = {}
  table.sort(all, function(a, b) return a.metadata.timestamp_start < b.metadata.timestamp_start end)
  for _, job in ipairs(all) do
    local m = job.metadata
    local w = per[m.rank]
    if not w then
      w = { first = m.timestamp_start, gaps = 0 }
      per[m.rank] = w
    else
      w.gaps = w.gaps + math.max(0, m.timestamp_start - w.last)
    end
    w.last = m.timestamp_end
  end
  local lost_start, lost_gaps, lost_end, used = 0, 0, 0, 0
  for _, w in pairs(per) do
    lost_start, lost_gaps, lost_end, used = lost_start + (w.first - first), lost_gaps + w.gaps, lost_end + (last - w.last), used + 1
  end
  -- Workers that got no job at all lost the whole makespan.
  lost_end = lost_end + (ev.num_workers - used) * makespan
  local total = ev.num_workers * makespan
  io.write(("SCHED mode=%s jobs=%d workers=%d makespan=%.6f busy=%.6f efficiency=%.6f lost_start=%.4f lost_gaps=%.4f lost_end=%.4f\n"):format(
    mode, N, ev.num_workers, makespan, busy, busy / total, lost_start / total, lost_gaps / total, lost_end / total))
  io.stdout:flush()
end
