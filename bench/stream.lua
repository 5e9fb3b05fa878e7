-- stream.lua: streaming submit: how soon the first job of one long submit starts, and how many of
-- its jobs finished before the submit returned (workers start while the list is still read).
-- usage: evaluator-lua bench/stream.lua thread N            (one process, 2 worker threads)
--        mpirun -np 3 evaluator-lua bench/stream.lua mpicomm N
-- Prints: STREAM method=M jobs=N first_ms=X submit_ms=Y total_ms=Z during=K (Z: submit + gather("ALL"))
--   first_ms: min over jobs of timestamp_start - timestamp_submit (the root's clock; every job's
--   timestamp_submit is the moment submit was called); during: jobs that ended before it returned.
local evaluator = require "evaluator"
local method, N = arg[1] or "thread", math.tointeger(tonumber(arg[2] or "100000"))

local ev <close> = evaluator.create(function(job) return job.parameters.x end, method, { num_workers = 2 })
if not ev then return end
local wtime = evaluator.mpi.wtime
local list = {}
for i = 1, N do list[i] = { x = i, lr = 0.01, act = "relu", units = 32 } end
local c0 = wtime() -- no earlier than the evaluator's own time 0
local t0 = wtime()
ev:submit(list)
local returned = wtime()
local first, during = math.huge, 0
local jobs = ev:gather("ALL")
local finished = wtime()
for _, j in ipairs(jobs) do
  local m = j.metadata
  if m.timestamp_start - m.timestamp_submit < first then first = m.timestamp_start - m.timestamp_submit end
  if m.timestamp_end < returned - c0 then during = during + 1 end
end
io.write(("STREAM method=%s jobs=%d first_ms=%.4f submit_ms=%.2f total_ms=%.2f during=%d\n")
  :format(method, N, first * 1000, (returned - t0) * 1000, (finished - t0) * 1000, during))
