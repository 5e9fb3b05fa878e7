-- lifecycle_spec.lua: one job lifecycle for every method: the run function's own view of a job,
-- custom backends' timestamps and limits from the core, errors and tracebacks that stay bounded
-- (deep and endless recursion), what a run function must return, and method_kwargs ranges.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

local on_root = H.on_root

for _, m in ipairs(H.METHODS) do
  describe(("the job lifecycle with method %q"):format(m.name), function()
    it("the run function gets its own copy of { id, parameters, args }: no status, and its writes stay its own", function()
      local t = on_root(m, [[function(job)
  local keys = {}
  for k in pairs(job) do keys[#keys + 1] = k end
  table.sort(keys)
  local seen = table.concat(keys, ",") .. "|" .. tostring(job.status) .. "|" .. tostring(rawequal(job.args, job.parameters))
  job.parameters.x = 99
  job.parameters.added = true
  return { objective = 1, metadata = { seen = seen } }
end]], nil, [[
local p = { x = 1 }
ev:submit({ p })
local j = ev:gather("ALL")[1]
report { seen = j.metadata.seen, x = j.parameters.x, added = j.parameters.added == nil, p_x = p.x, same = rawequal(j.parameters, p) }
]])
      assert.are.same({ seen = "args,id,parameters|nil|true", x = 1, added = true, p_x = 1, same = true }, t)
    end)

    -- After 200 short jobs a worker holds many jobs in advance; when the budget runs out, those it
    -- never began come back from the worker itself: they too must say they never started.
    it("jobs a worker held in advance and never began come back with rank -1 when the budget runs out", function()
      local t = on_root(m, [[function(job)
  if job.parameters.spin then local t = os.time() + 30; while os.time() < t do end end
  return 1
end]], m.name == "serial" and "nil" or "{ num_workers = 2 }", [[
local warm = {}
for i = 1, 200 do warm[i] = {} end
ev:submit(warm)
ev:gather("ALL")
local spin = {}
for i = 1, 40 do spin[i] = { spin = true } end
ev:set_timeout(1)
ev:submit(spin)
local started, never = 0, 0
for _, j in ipairs(ev:gather("ALL")) do
  if j.metadata.rank == -1 then never = never + 1 else started = started + 1 end
end
report { started = started, never = never }
]], { timeout = 60 })
      assert.are.equal(40, t.started + t.never)
      assert.is_true(t.started <= (m.name == "serial" and 1 or 2), t.started .. " jobs say they started on 2 workers")
    end)

    it("a run function that recurses without end fails its job quickly with 'stack overflow'; the next job runs", function()
      local t = on_root(m, [[function(job)
  if job.parameters.ok then return 7 end
  local function f(n) return f(n + 1) + 1 end
  return f(1)
end]], nil, [[
local t0 = evaluator.mpi.wtime()
ev:submit({ { ok = false }, { ok = true } })
local jobs = ev:gather("ALL")
table.sort(jobs, function(a, b) return a.id < b.id end)
report { secs = evaluator.mpi.wtime() - t0, obj1 = jobs[1].objective, err = jobs[1].metadata.error, obj2 = jobs[2].objective }
]], { timeout = 60 })
      assert.are.equal("F", t.obj1)
      assert.truthy(t.err:find("stack overflow", 1, true), t.err)
      assert.is_true(#t.err < 4000, "the traceback is bounded: " .. #t.err .. " bytes")
      assert.is_true(t.secs < 8, "failed in " .. t.secs .. " s")
      assert.are.equal(7, t.obj2)
    end)

    -- At 300,000 frames arming the stop hook walks the whole stack (lua_sethook), longer than the
    -- ticker's 20 ms: the second such job on one worker state ran only the signal handler for ever.
    it("recursion without end twice on one worker: both jobs fail with 'stack overflow' in seconds", function()
      local t = on_root(m, [[function(job)
  if job.parameters.ok then return 7 end
  local function f(n) return f(n + 1) + 1 end
  return f(1)
end]], m.name == "serial" and "nil" or "{ num_workers = 1, job_timeout = 60 }", [[
local t0 = evaluator.mpi.wtime()
ev:submit({ { ok = false }, { ok = false }, { ok = true } })
local jobs = ev:gather("ALL")
table.sort(jobs, function(a, b) return a.id < b.id end)
local errs = {}
for i = 1, 2 do errs[i] = tostring(jobs[i].metadata.error):match("stack overflow") or tostring(jobs[i].metadata.error) end
report { secs = evaluator.mpi.wtime() - t0, errs = errs, obj3 = jobs[3].objective }
]], { timeout = 60 })
      assert.are.same({ "stack overflow", "stack overflow" }, t.errs)
      assert.are.equal(7, t.obj3)
      assert.is_true(t.secs < 15, "took " .. t.secs .. " s")
    end)

    it("an error 40,000 frames deep: a short traceback (first and last frames) in linear time", function()
      local t = on_root(m, [[function(job)
  local function d(n) if n == 0 then error("bottom") end return d(n - 1) + 1 end
  return d(40000)
end]], nil, [[
local t0 = evaluator.mpi.wtime()
ev:submit({ {} })
local j = ev:gather("ALL")[1]
report { secs = evaluator.mpi.wtime() - t0, err = j.metadata.error }
]], { timeout = 60 })
      assert.truthy(t.err:find("bottom", 1, true), t.err)
      assert.truthy(t.err:find("skipping %d+ levels"), t.err)
      assert.is_true(#t.err < 4000, #t.err .. " bytes")
      assert.is_true(t.secs < 2, t.secs .. " s")
    end)

    it("deep recursion that then spins is stopped by job_timeout on time", function()
      local t = on_root(m, [[function(job)
  local function d(n) if n == 0 then while true do end end return d(n - 1) + 1 end
  return d(30000)
end]], "{ job_timeout = 1 }", [[
local t0 = evaluator.mpi.wtime()
ev:submit({ {} })
local j = ev:gather("ALL")[1]
report { secs = evaluator.mpi.wtime() - t0, obj = j.objective, status = j.status }
]], { timeout = 60 })
      assert.are.same({ "F_TIMEOUT", "CANCELLED" }, { t.obj, t.status })
      assert.is_true(t.secs < 4, t.secs .. " s")
    end)

    it("a string result that does not start with F fails the job and says what to return", function()
      local t = on_root(m, [[function(job) return job.parameters.r end]], nil, [[
ev:submit({ { r = "good" }, { r = "F_mine" } })
local jobs = ev:gather("ALL")
table.sort(jobs, function(a, b) return a.id < b.id end)
report { o1 = jobs[1].objective, e1 = jobs[1].metadata.error, o2 = jobs[2].objective, e2 = jobs[2].metadata.error or "none" }
]])
      assert.are.equal("F", t.o1)
      assert.truthy(t.e1:find("must return", 1, true), t.e1)
      assert.are.same({ "F_mine", "none" }, { t.o2, t.e2 })
    end)

    -- Streaming submit: a pool's workers start on a long list's first jobs while the rest is read
    -- (serial runs jobs only when gathered), and every job still comes back exactly once.
    it("a long submit starts jobs while it reads the list; each job comes back once", function()
      local t = on_root(m, [[function(job) return job.parameters.x end]], nil, [[
local c0 = evaluator.mpi.wtime() -- no earlier than the evaluator's own time 0
local list = {}
for i = 1, 40000 do list[i] = { x = i } end
ev:submit(list)
local returned = evaluator.mpi.wtime() - c0
local jobs = ev:gather("ALL")
local seen, dup, sum, ended_during = {}, 0, 0, 0
for _, j in ipairs(jobs) do
  if seen[j.id] then dup = dup + 1 end
  seen[j.id] = true
  sum = sum + j.objective
  if j.metadata.timestamp_end < returned then ended_during = ended_during + 1 end
end
report { n = #jobs, dup = dup, sum = sum, submitted = ev.num_jobs_submitted, gathered = ev.num_jobs_gathered,
  ended_during = ended_during }
]], { timeout = 120 })
      assert.are.same({ 40000, 0, 40000 * 40001 // 2, 40000, 40000 }, { t.n, t.dup, t.sum, t.submitted, t.gathered })
      if m.name == "serial" then
        assert.are.equal(0, t.ended_during)
      else
        assert.is_true(t.ended_during > 100, t.ended_during .. " jobs ended before submit returned")
      end
    end)

    it("a submit that fails at its last element withdraws the jobs it started: stopped, not counted, never returned", function()
      local t = on_root(m, [[function(job)
  if job.parameters.spin then local t = os.time() + 60; while os.time() < t do end end
  if job.parameters.cmd then os.execute("sleep 61.73") end
  return job.parameters.x or 0
end]], nil, [[
ev:submit({ { x = 1 }, { x = 2 } }) -- an earlier call's jobs stay
local list = { { spin = true }, { cmd = true } }
for i = 3, 20000 do list[i] = { x = i } end
list[#list + 1] = { x = function() end }
local ok, err = pcall(ev.submit, ev, list)
local counts = { ev.num_jobs_submitted }
local jobs = ev:gather("ALL")
local xs = {}
for _, j in ipairs(jobs) do xs[#xs + 1] = j.objective end
table.sort(xs)
local t0 = evaluator.mpi.wtime()
ev:submit({ { x = 5 } }) -- runs at once: the withdrawn jobs no longer hold a worker
local next_job = ev:gather("ALL")[1]
local secs = evaluator.mpi.wtime() - t0
local p = io.popen("pgrep -f 'sleep 61[.]73'")
local left = p:read("a")
p:close()
report { ok = ok, err = err, submitted_after_fail = counts[1], xs = xs, next_id = next_job.id, secs = secs,
  submitted = ev.num_jobs_submitted, gathered = ev.num_jobs_gathered, left = left }
]], { timeout = 120 })
      assert.is_false(t.ok)
      assert.truthy(t.err:find("element 20001: parameters.x is a function", 1, true), t.err)
      assert.are.same({ 2, { 1, 2 }, 3, 3 }, { t.submitted_after_fail, t.xs, t.submitted, t.gathered })
      assert.truthy(t.next_id:match("%.2$"), "the next job takes the next number: " .. t.next_id)
      assert.is_true(t.secs < 15, t.secs .. " s: a withdrawn job still held a worker")
      assert.are.equal("", t.left, "the command of a withdrawn job still runs")
    end)
  end)
end

describe("custom backends on the core's lifecycle", function()
  local BACKEND = [[
local C = evaluator.Evaluator:extend("Slow")
function C:execute(job)
  if job.parameters.spin then while true do end end
  local t = evaluator.mpi.wtime() + (job.parameters.wait or 0)
  while evaluator.mpi.wtime() < t do coroutine.yield() end
  return job.parameters.x
end
]]

  it("timestamp_start is the first resume, not the submit", function()
    local t = H.eval(BACKEND .. [[
local ev <close> = C.new(function() end)
ev:submit({ { x = 1 } })
wait_s(0.3)
local j = ev:gather("ALL")[1]
report { sub = j.metadata.timestamp_submit, start = j.metadata.timestamp_start, obj = j.objective }
]])
    assert.are.equal(1, t.obj)
    assert.is_true(t.start - t.sub >= 0.29, ("start %.4f submit %.4f"):format(t.start, t.sub))
  end)

  it("job_timeout stops a job that yields past it and one that spins without yielding", function()
    local t = H.eval(BACKEND .. [[
local ev <close> = C.new(function() end, { job_timeout = 0.5 })
local t0 = evaluator.mpi.wtime()
ev:submit({ { x = 1, wait = 30 }, { x = 2, spin = true }, { x = 3 } })
local jobs = ev:gather("ALL")
table.sort(jobs, function(a, b) return a.id < b.id end)
local out = {}
for i, j in ipairs(jobs) do out[i] = { j.objective, j.status } end
report { out = out, secs = evaluator.mpi.wtime() - t0 }
]], { timeout = 60 })
    assert.are.same({ { "F_TIMEOUT", "CANCELLED" }, { "F_TIMEOUT", "CANCELLED" }, { 3, "DONE" } }, t.out)
    assert.is_true(t.secs < 3, t.secs .. " s")
  end)

  it("the budget cancels running jobs; close without waiting cancels the jobs not started", function()
    local t = H.eval(BACKEND .. [[
local ev = C.new(function() end, { wait_on_exit = false })
ev:set_timeout(0.3)
ev:submit({ { x = 1, wait = 30 }, { x = 2 } })
local first = ev:gather("ALL")
table.sort(first, function(a, b) return a.id < b.id end)
ev:close()
local ev2 = C.new(function() end, { wait_on_exit = false })
ev2:submit({ { x = 1, wait = 30 } })
ev2:close()
report { a = first[1].objective, b = first[2].objective, closed = ev2.jobs_done[1] and ev2.jobs_done[1].objective or "none" }
]], { timeout = 60 })
    assert.are.same({ a = "F_CANCELLED", b = 2, closed = "F_CANCELLED" }, t)
  end)
end)

describe("method_kwargs numbers are checked before any cast", function()
  for _, case in ipairs({
    { "num_workers = 2^32", "num_workers" },
    { "job_memory_limit = 2^64", "job_memory_limit" },
    { "num_workers = 1e308", "num_workers" },
  }) do
    it(case[1] .. " is an error naming the key", function()
      local r = H.run(("local ev = evaluator.create(function() return 1 end, 'thread', { %s })"):format(case[1]))
      assert.are_not.equal(0, r.code, H.describe(r))
      assert.truthy(r.stderr:find(case[2], 1, true), H.describe(r))
      assert.truthy(r.stderr:find("script.lua:2:", 1, true), H.describe(r))
    end)
  end

  it("root = 1 << 40 is an error naming root", function()
    local r = H.run("local ev = evaluator.create(function() return 1 end, 'mpicomm', { root = 1 << 40 })", { np = 2, mpi = true })
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.truthy(r.stderr:find("root", 1, true), H.describe(r))
    assert.falsy(r.stderr:find("-2147483648", 1, true), H.describe(r))
  end)
end)

describe("serial with num_workers ~= 1", function()
  it("keeps num_workers (as DeepHyper's SerialEvaluator) and says on stderr that it runs one job at a time", function()
    local r = H.run([[
local ev <close> = evaluator.create(function(job) return evaluator.mpi.wtime() end, "serial", { num_workers = 3 })
ev:submit({ {}, {}, {} })
local jobs = ev:gather("ALL")
table.sort(jobs, function(a, b) return a.id < b.id end)
local overlap = false
for i = 2, #jobs do overlap = overlap or jobs[i].metadata.timestamp_start < jobs[i - 1].metadata.timestamp_end end
report { n = ev.num_workers, overlap = overlap }
]])
    assert.are.equal(0, r.code, H.describe(r))
    assert.are.same({ n = 3, overlap = false }, H.result(r))
    assert.truthy(r.stderr:find("runs one job at a time", 1, true), H.describe(r))
  end)
end)

describe("process workers prefetch", function()
  it("a crash fails only the job it ran: the jobs the worker held are requeued and run", function()
    local t = H.eval([[
local ev <close> = evaluator.create(function(job)
  if job.parameters.i == 50 then os.exit(3) end
  return job.parameters.i
end, "process", { num_workers = 1 })
local list = {}
for i = 1, 200 do list[i] = { i = i } end
ev:submit(list)
local out, crashed = {}, {}
for _, j in ipairs(ev:gather("ALL")) do
  if j.objective == "F_CRASHED" then crashed[#crashed + 1] = j.parameters.i
  elseif j.objective == j.parameters.i then out[#out + 1] = j.parameters.i end
end
report { done = #out, crashed = crashed, n = ev.num_jobs_gathered }
]], { timeout = 60 })
    assert.are.same({ done = 199, crashed = { 50 }, n = 200 }, t)
  end)
end)

describe("the first CSV dump of a run", function()
  it("appends to a file another live run is dumping into, even one that started before; replaces a previous run's", function()
    local dir = H.tmpdir()
    local function writer(name, delay)
      return ([[
os.execute("sleep %s")
local evaluator = require "evaluator"
local ev <close> = evaluator.create(function(job) return job.parameters.i end, "serial")
local batch = {}
for i = 1, 5 do batch[i] = { who = %q, i = i } end
ev:submit(batch)
ev:gather("ALL")
ev:dump_jobs_done_to_csv(%q, "shared.csv")
local t = evaluator.mpi.wtime() + 2.5
while evaluator.mpi.wtime() < t do end
]]):format(delay, name, dir)
    end
    -- b starts (and loads the module) after a's only dump, while a still runs
    local rs = H.run_parallel({ { writer("a", 0), { prelude = false, timeout = 60 } },
                                { writer("b", 1), { prelude = false, timeout = 60 } } })
    for _, r in ipairs(rs) do assert.are.equal(0, r.code, H.describe(r)) end
    assert.are.equal(11, #H.read_csv(dir .. "/shared.csv"), "a's rows and b's, one header")
    local r = H.run(writer("c", 0), { prelude = false, timeout = 60 })
    assert.are.equal(0, r.code, H.describe(r))
    local rows = H.read_csv(dir .. "/shared.csv")
    assert.are.equal(6, #rows, "a later run starts the file afresh")
    H.rmdir(dir)
  end)
end)
