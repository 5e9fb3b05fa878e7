-- floor.lua: the Lua tables alone that bench/cost.lua's jobs must end up as, built in plain Lua
-- with nothing else: the script's own parameter tables and loop, each job's finished table (id,
-- parameters, args, status, output, objective) with its metadata table (4 timestamps, rank), and,
-- where the run function runs in the root (serial), the job it is given (id and a copy of the
-- parameters). Every job shares one id string here: a distinct "<search_id>.<n>" per job costs the
-- evaluator about 700 instructions more (and plain Lua's `..` about 2,000), so this is a lower
-- bound. No evaluator that returns these tables costs less: row 13 of `make bench` sets
-- cost.lua's count beside it.
-- usage: evaluator-lua bench/floor.lua serial|mpicomm N
local kind, N = arg[1] or "serial", math.tointeger(tonumber(arg[2] or "1000"))

local list = {}
for i = 1, N do list[i] = { x = i, lr = 0.01, act = "relu", units = 32 } end
local done = {}
for i = 1, N do
  local p = list[i]
  local id = "0.1"
  local output = p.x
  if kind == "serial" then -- the run function's own job: a copy of the parameters
    local view = { id = id, parameters = { x = p.x, lr = p.lr, act = p.act, units = p.units } }
    view.args = view.parameters
    output = view.parameters.x
  end
  done[i] = { id = id, parameters = p, args = p, status = "DONE", output = output, objective = output,
    metadata = { timestamp_submit = 0.1, timestamp_start = 0.2, timestamp_end = 0.3, timestamp_gather = 0.4, rank = 1 } }
end
for _, job in ipairs(done) do
  if job.objective ~= job.parameters.x then error("wrong objective for " .. job.id) end
end
if #done ~= N then error(("built %d of %d"):format(#done, N)) end
