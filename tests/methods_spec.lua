-- methods_spec.lua: behaviour that differs between methods by design (README, "Methods: when to
-- use which"): crashes under process, how thread workers get the run function, metadata.rank,
-- parallelism; bad arguments to create; "ray"; custom backends (Evaluator:extend()); and the
-- subprocess_backend example.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

describe("by design, process method", function()
  it("os.exit(3) in a job: F_CRASHED mentioning the exit; kill -9 of its own worker: F_CRASHED mentioning the signal; later jobs run", function()
    local t = H.eval([[
local function run(job)
  local k = job.parameters.k
  if k == "exit" then os.exit(3) end
  if k == "kill" then os.execute("kill -9 $PPID"); return "survived the kill" end
  return { objective = job.parameters.i, metadata = { pid = tonumber(io.open("/proc/self/stat"):read("l"):match("^(%d+)")) } }
end
local ev <close> = evaluator.create(run, "process", { num_workers = 2 })
if ev then
  ev:submit({ { k = "ok", i = 1 }, { k = "ok", i = 2 } })
  local pids_before = {}
  for _, j in ipairs(ev:gather("ALL")) do pids_before[#pids_before + 1] = j.metadata.pid end
  ev:submit({ { k = "exit" } })
  local e = ev:gather("ALL")[1]
  ev:submit({ { k = "kill" } })
  local kj = ev:gather("ALL")[1]
  local later = {}
  for i = 1, 6 do later[i] = { k = "ok", i = 10 + i } end
  ev:submit(later)
  local objs, pids_after = {}, {}
  for _, j in ipairs(ev:gather("ALL")) do
    objs[#objs + 1] = { obj = j.objective, status = j.status }
    pids_after[j.metadata.pid] = true
  end
  table.sort(objs, function(a, b) return a.obj < b.obj end)
  local replaced = 0
  for pid in pairs(pids_after) do
    local was = false
    for _, p in ipairs(pids_before) do if p == pid then was = true end end
    if not was then replaced = replaced + 1 end
  end
  report { exit = { obj = e.objective, status = e.status, err = e.metadata.error },
    kill = { obj = kj.objective, status = kj.status, err = kj.metadata.error, out = kj.output },
    later = objs, replaced = replaced, num_workers = ev.num_workers }
end
]], { timeout = 30 })
    assert.are.equal("F_CRASHED", t.exit.obj)
    assert.is_string(t.exit.err)
    assert.truthy(t.exit.err:find("exit", 1, true) and t.exit.err:find("3", 1, true), "metadata.error: " .. t.exit.err)
    assert.are.equal("F_CRASHED", t.kill.obj, "output: " .. tostring(t.kill.out))
    assert.is_string(t.kill.err)
    assert.truthy(t.kill.err:find("signal", 1, true) and t.kill.err:find("9", 1, true), "metadata.error: " .. t.kill.err)
    assert.are.equal(6, #t.later)
    for i, j in ipairs(t.later) do assert.are.same({ obj = 10 + i, status = "DONE" }, j) end
    assert.are.equal(2, t.num_workers)
    assert.is_true(t.replaced >= 1, "later jobs ran in a new worker process")
  end)
end)

describe("by design, thread method", function()
  it("a run function with upvalues and a module the script required works in worker threads", function()
    local t = H.eval([[
local mymod = require "mymod"
local scale = 10
local offsets = { 1, 2, 3 }
local function run(job)
  return { objective = mymod.square(job.parameters.x) * scale + offsets[job.parameters.i], metadata = { tag = mymod.tag } }
end
local ev <close> = evaluator.create(run, "thread", { num_workers = 3 })
if ev then
  ev:submit({ { x = 1, i = 1 }, { x = 2, i = 2 }, { x = 3, i = 3 } })
  local out = {}
  for _, j in ipairs(ev:gather("ALL")) do out[#out + 1] = { obj = j.objective, tag = j.metadata.tag, err = j.metadata.error } end
  table.sort(out, function(a, b) return a.obj < b.obj end)
  report { out = out }
end
]], { files = { ["mymod.lua"] = 'return { square = function(x) return x * x end, tag = "mod-ok" }\n' }, timeout = 30 })
    assert.are.same({ { obj = 11, tag = "mod-ok" }, { obj = 42, tag = "mod-ok" }, { obj = 93, tag = "mod-ok" } }, t.out)
  end)

  it("worker threads do not print what the script prints after create: the root's line appears once", function()
    local r = H.ok(H.run([[
local ev <close> = evaluator.create(function(job) return 1 end, "thread", { num_workers = 3 })
print("AFTER CREATE " .. tostring(ev ~= nil))
if ev then
  ev:submit({ { x = 1 }, { x = 2 }, { x = 3 } })
  ev:gather("ALL")
end
print("LAST LINE " .. tostring(ev ~= nil))
]], { timeout = 30 }))
    assert.are.equal(1, H.count(r.stdout, "AFTER CREATE"), H.describe(r))
    assert.are.equal(1, H.count(r.stdout, "AFTER CREATE true"), H.describe(r))
    assert.are.equal(1, H.count(r.stdout, "LAST LINE"), H.describe(r))
    assert.are.equal(1, H.count(r.stdout, "LAST LINE true"), H.describe(r))
  end)

  it("a pool whose script the workers cannot re-read (it removed itself) gives a clear error, not a hang", function()
    local r = H.run([[
os.remove(arg[0])
local ok, err = pcall(evaluator.create, function(job) return 1 end, "thread", { num_workers = 2 })
report { ok = ok, err = tostring(err) }
]], { timeout = 20, name = "vanishing.lua" })
    assert.is_false(r.timed_out)
    local t = H.result(r)
    assert.is_false(t.ok, "create succeeded: " .. t.err)
    assert.truthy(t.err:find("vanishing.lua", 1, true), t.err)
    assert.truthy(t.err:find("script", 1, true) or t.err:find("No such file", 1, true), t.err)
    assert.is_true(r.elapsed < 10)
  end)
end)

describe("by design, thread and process", function()
  for _, name in ipairs({ "thread", "process" }) do
    it(("%s: metadata.rank is the worker's index 1..num_workers"):format(name), function()
      local t = H.eval(([[
local ev <close> = evaluator.create(function(job) os.execute("sleep 0.05") return 1 end, %q, { num_workers = 3 })
if ev then
  local l = {}
  for i = 1, 12 do l[i] = { i = i } end
  ev:submit(l)
  local ranks = {}
  for _, j in ipairs(ev:gather("ALL")) do ranks[#ranks + 1] = j.metadata.rank end
  report { ranks = ranks, nw = ev.num_workers }
end
]]):format(name), { timeout = 30 })
      assert.are.equal(3, t.nw)
      assert.are.equal(12, #t.ranks)
      local seen = {}
      for _, r in ipairs(t.ranks) do
        assert.is_true(r == 1 or r == 2 or r == 3, "metadata.rank " .. tostring(r))
        seen[r] = true
      end
      assert.is_true(seen[1] and seen[2] and seen[3], "every worker index appears")
    end)

    it(("%s: num_workers = 4 runs 16 jobs of sleep 0.25 in parallel (< 2.0 s, serially 4 s)"):format(name), function()
      local t = H.eval(([[
local ev <close> = evaluator.create(function(job) os.execute("sleep 0.25") return job.parameters.i end, %q, { num_workers = 4 })
if ev then
  local l = {}
  for i = 1, 16 do l[i] = { i = i } end
  local t0 = evaluator.mpi.wtime()
  ev:submit(l)
  local n = #ev:gather("ALL")
  report { n = n, took = evaluator.mpi.wtime() - t0 }
end
]]):format(name), { timeout = 30 })
      assert.are.equal(16, t.n)
      assert.is_true(t.took < 2.0, ("16 jobs of 0.25 s on 4 workers took %.2f s"):format(t.took))
    end)
  end
end)

describe("by design, mpicomm", function()
  it("an idle worker rank leaves its core: 3 s waiting for a job cost it under 0.6 s of CPU", function()
    -- README, "Nothing blocks in MPI": a wait probes, then naps (Open MPI's blocking calls would
    -- busy-poll for the whole wait). The root waits in a child's sleep, so its workers get nothing.
    local r = H.ok(H.run([[
local ev <close> = evaluator.create(function(job) return job.parameters.x end, "mpicomm")
if ev then
  ev:submit({ { x = 1 }, { x = 2 } })
  ev:gather("ALL")
  os.execute("sleep 3")
  ev:submit({ { x = 3 } })
  report { who = "root", got = ev:gather("ALL")[1].objective }
  ev:close()
else
  report { who = "worker", cpu = os.clock() }
end
]], { np = 3, timeout = 60 }))
    local workers = 0
    for _, t in ipairs(H.results(r)) do
      if t.who == "root" then assert.are.equal(3, t.got, H.describe(r)) end
      if t.who == "worker" then
        workers = workers + 1
        -- Start-up (MPI_Init) takes about 0.1 s of CPU; a rank that spun would show about 3 s.
        assert.is_true(t.cpu < 0.6, ("an idle worker rank used %.2f s of CPU in 3 s\n%s"):format(t.cpu, H.describe(r)))
      end
    end
    assert.are.equal(2, workers, H.describe(r))
  end)
end)

describe("bad arguments to create", function()
  it("num_workers = 0, -1, 1.5, '2' each raise an error naming num_workers; run_function not a function names run_function", function()
    local t = H.eval([[
local out = {}
for _, m in ipairs({ "serial", "thread", "process" }) do
  for _, nw in ipairs({ 0, -1, 1.5, "2" }) do
    local ok, err = pcall(evaluator.create, function() return 1 end, m, { num_workers = nw })
    if ok and err then err:close() end
    out[#out + 1] = { m = m, nw = tostring(nw) .. ":" .. type(nw), ok = ok, err = tostring(err) }
  end
  for _, bad in ipairs({ 42, "run", {}, true }) do
    local ok, err = pcall(evaluator.create, bad, m)
    if ok and err then err:close() end
    out[#out + 1] = { m = m, rf = type(bad), ok = ok, err = tostring(err) }
  end
end
report { out = out }
]], { timeout = 30 })
    assert.are.equal(24, #t.out)
    for _, o in ipairs(t.out) do
      local what = o.nw and ("num_workers = " .. o.nw) or ("run_function a " .. o.rf)
      assert.is_false(o.ok, ("%s with %s was accepted"):format(o.m, what))
      local key = o.nw and "num_workers" or "run_function"
      assert.truthy(o.err:find(key, 1, true), ("%s, %s: %s"):format(o.m, what, o.err))
      assert.truthy(o.err:find("script.lua:", 1, true), "the error points at the script's line: " .. o.err)
    end
  end)

  it('the "ray" method raises an error that mentions Ray', function()
    local t = H.eval([[
local ok, err = pcall(evaluator.create, function() return 1 end, "ray")
report { ok = ok, err = tostring(err) }
]], { timeout = 20 })
    assert.is_false(t.ok)
    assert.truthy(t.err:find("Ray", 1, true), t.err)
  end)
end)

describe("custom backend (evaluator.Evaluator:extend())", function()
  it("execute that yields several times works with gather BATCH 1 and ALL: ids, timestamps, callbacks", function()
    local t = H.eval([[
local My = evaluator.Evaluator:extend()
local resumed = {}
function My:execute(job)
  local n = job.parameters.yields
  for i = 1, n do
    coroutine.yield()
    resumed[job.parameters.i] = (resumed[job.parameters.i] or 0) + 1
  end
  return self.run_function(job, self.run_function_kwargs)
end
local log = { launch = 0, done = 0, gather = 0, close = 0 }
local cb = {}
function cb:on_launch(job) log.launch = log.launch + 1 end
function cb:on_done(job) log.done = log.done + 1 end
function cb:on_gather(l, o) log.gather = log.gather + 1 end
function cb:on_close() log.close = log.close + 1 end
local ev = My.new(function(job, kw) return job.parameters.i * kw.k end, { run_function_kwargs = { k = 10 }, callbacks = { cb } })
ev:submit({ { i = 1, yields = 2 }, { i = 2, yields = 5 }, { i = 3, yields = 9 }, { i = 4, yields = 3 } })
local first = ev:gather("BATCH", 1)
local first_n = #first
local rest = ev:gather("ALL")
local jobs = {}
for _, list in ipairs({ first, rest }) do
  for _, j in ipairs(list) do
    local md = j.metadata
    jobs[#jobs + 1] = { id = j.id, obj = j.objective, status = j.status,
      ts_ok = type(md.timestamp_submit) == "number" and md.timestamp_submit <= md.timestamp_start
        and md.timestamp_start <= md.timestamp_end and md.timestamp_end <= md.timestamp_gather }
  end
end
table.sort(jobs, function(a, b) return a.id < b.id end)
ev:close()
local bad_ok, bad_err = pcall(function()
  local NoExec = evaluator.Evaluator:extend()
  return NoExec.new(function() return 1 end)
end)
report { first_n = first_n, rest_n = #rest, jobs = jobs, resumed = resumed, log = log, gathered = ev.num_jobs_gathered,
  type = ev:to_json().type, bad_ok = bad_ok, bad_err = tostring(bad_err) }
]], { timeout = 30 })
    assert.is_true(t.first_n >= 1 and t.first_n < 4, "BATCH 1 returned " .. t.first_n .. " jobs")
    assert.are.equal(4 - t.first_n, t.rest_n)
    assert.are.equal(4, #t.jobs)
    for i, j in ipairs(t.jobs) do
      assert.are.same({ id = "0." .. (i - 1), obj = i * 10, status = "DONE", ts_ok = true }, j)
    end
    assert.are.same({ 2, 5, 9, 3 }, { t.resumed[1], t.resumed[2], t.resumed[3], t.resumed[4] })
    assert.are.same({ launch = 4, done = 4, gather = 2, close = 1 }, t.log)
    assert.are.equal(4, t.gathered)
    assert.is_false(t.bad_ok, "a class without execute was accepted")
    assert.truthy(t.bad_err:find("execute", 1, true), t.bad_err)
  end)

  it("examples/subprocess_backend.lua runs and writes its CSV (four copies at once, each in its own directory)", function()
    -- a copy of the example in each temporary directory, run there as it is; four runs at once
    -- (they mostly wait), so that a race between the example's coroutines and its commands shows
    local text = assert(H.read_file(H.ROOT .. "/examples/subprocess_backend.lua"))
    local list, dirs = {}, {}
    for i = 1, 4 do
      dirs[i] = H.tmpdir()
      list[i] = { text, { dir = dirs[i], prelude = false, name = "subprocess_backend.lua", timeout = 30, env = { TMPDIR = dirs[i] } } }
    end
    local ok, err = pcall(function()
      for i, r in ipairs(H.run_parallel(list)) do
        H.ok(r)
        assert.truthy(r.stdout:find("8 jobs of 0.5 s in", 1, true), H.describe(r))
        local took = tonumber(r.stdout:match("in ([%d.]+) s"))
        assert.is_true(took and took < 3.5, "the 8 commands did not overlap: " .. r.stdout)
        local recs, header = H.read_csv_records(dirs[i] .. "/subprocess_results.csv")
        assert.are.equal(8, #recs)
        local cols = table.concat(header, ",")
        assert.truthy(cols:find("p:t", 1, true) and cols:find("p:x", 1, true) and cols:find("objective", 1, true), cols)
        for _, rec in ipairs(recs) do
          local x = tonumber(rec["p:x"])
          assert.is_near(-(x - 1) ^ 2, tonumber(rec.objective), 1e-9)
        end
      end
    end)
    for i = 1, 4 do H.rmdir(dirs[i]) end
    assert(ok, err)
  end)
end)
