-- scale.lua: scheduling efficiency of any method with any number of workers (bench/run.sh's rows
-- sized by nproc). N jobs that each spin for DUR seconds, one submit and gather("ALL");
-- efficiency = sum of (timestamp_end - timestamp_start) / (num_workers x makespan), the makespan
-- from the first submit to the last gather on the root's clock.
-- usage: evaluator-lua bench/scale.lua METHOD WORKERS N DUR   (mpicomm: under mpirun, WORKERS is
--        ignored: the ranks but the root are the workers)
-- Prints (the root): SCALE method=M workers=W jobs=N dur=D makespan=S efficiency=E
local evaluator = require "evaluator"
local method, W = arg[1] or "mpicomm", math.tointeger(tonumber(arg[2] or "2"))
local N, DUR = math.tointeger(tonumber(arg[3] or "100")), tonumber(arg[4] or "0.01")

package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local efficiency = require "efficiency" -- bench/efficiency.lua, beside this script

local ev <close> = evaluator.create(efficiency.run, method, method ~= "mpicomm" and { num_workers = W } or nil)
if ev then
  local list = {}
  for i = 1, N do list[i] = { x = i, dur = DUR } end
  ev:submit(list)
  local all = ev:gather("ALL")
  assert(#all == N, "gathered " .. #all .. " of " .. N)
  local e = efficiency.measure(all, ev.num_workers)
  io.write(("SCALE method=%s workers=%d jobs=%d dur=%g makespan=%.6f efficiency=%.6f\n"):format(
    method, ev.num_workers, N, DUR, e.makespan, e.efficiency))
  io.stdout:flush()
end
