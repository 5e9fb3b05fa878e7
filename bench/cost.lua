-- cost.lua: no-op jobs with 4 parameters, one submit of N then gather("ALL"), for counting the
-- instructions a job costs (bench/cost.sh runs it under callgrind at two N and takes the slope).
-- usage: evaluator-lua bench/cost.lua METHOD N
local evaluator = require "evaluator"
local method, N = arg[1] or "serial", math.tointeger(tonumber(arg[2] or "1000"))

local function run(job) return job.parameters.x end

do
  local ev <close> = evaluator.create(run, method)
  if ev then
    local list = {}
    for i = 1, N do list[i] = { x = i, lr = 0.01, act = "relu", units = 32 } end
    ev:submit(list)
    local done = ev:gather("ALL")
    for _, job in ipairs(done) do
      if job.objective ~= job.parameters.x then error("wrong objective for " .. job.id) end
    end
    if #done ~= N then error(("gathered %d of %d"):format(#done, N)) end
    ev.jobs_done = {}
  end
end
