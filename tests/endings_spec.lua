-- endings_spec.lua: every way a run can end leaves nothing behind and never hangs: an error with
-- and without <close>, kill -9 of any process (rank, root, mpirun, a process-pool worker), close
-- without waiting and SIGTERM while a job reads io.popen, create on only some ranks, commands of
-- one thread never waiting on another's stream, and a chaos run killing at random moments.
-- Each test's commands carry a marker (an unusual sleep length) that `pgrep -f` looks for.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

local capture = H.capture

-- The marker as a pattern that does not match itself: the shell running pgrep has it in its
-- command line too.
local function pattern(marker) return "[" .. marker:sub(1, 1) .. "]" .. marker:sub(2) end

local function left(marker)
  return tonumber((capture("pgrep -f " .. H.quote(pattern(marker)) .. " | wc -l"):gsub("%s", ""))) or -1
end

-- A command line no other test or run uses: "sleep <seconds>.<n><random>7" (90 s unless given).
local marker_n = 0
local function marker(seconds)
  marker_n = marker_n + 1
  return ("sleep %d.%d%d7"):format(seconds or 90, marker_n, math.random(100, 999))
end

-- Writes the rank's pid to pid.<rank> (for tests/kill_run.sh).
local PIDFILE = [[
do local f = io.open("pid." .. evaluator.mpi.rank(), "w"); f:write(io.open("/proc/self/stat"):read("n")); f:close() end
]]

local function kill_run(script, np, target, mark)
  local dir = H.tmpdir()
  H.write_file(dir .. "/script.lua", H.PRELUDE .. PIDFILE .. script)
  local out = capture(("EVL_BIN=%s bash %s/tests/kill_run.sh %s %d %s %s 2>/dev/null"):format(
    H.quote(H.BIN), H.quote(H.ROOT), H.quote(dir), np, target, H.quote(pattern(mark))))
  H.rmdir(dir)
  local killed, n, secs, secs_cmd = out:match("killed=(%S+) left=(%S+) secs=(%S+) secs_cmd=(%S+)")
  assert(killed and killed ~= "none", "kill_run.sh: " .. out)
  return tonumber(n), tonumber(secs), tonumber(secs_cmd)
end

for _, m in ipairs(H.METHODS) do
  describe(("endings with method %q"):format(m.name), function()
    it("an uncaught error with <close> while jobs run: no wait, one message, no process left", function()
      local mark = marker()
      local r = H.run(([[
local ev <close> = evaluator.create(function(job) os.execute(%q) return 1 end, %q, { num_workers = 2 })
if ev then
  ev:submit({ {}, {} })
  %s
  error("driver failed here")
end
]]):format(mark, m.name, m.name == "serial" and "" or "wait_s(1)"), { np = m.np, timeout = 40 })
      assert.are_not.equal(0, r.code, H.describe(r))
      assert.is_true(r.elapsed < 15, "took " .. r.elapsed .. " s\n" .. H.describe(r))
      assert.are.equal(1, H.count(r.stderr, "driver failed here"), H.describe(r))
      assert.are.equal(0, left(mark), "a command of a job is left")
    end)

    if m.name ~= "serial" then
      it("an uncaught error without <close>: no command and no worker left", function()
        local mark = marker()
        local r = H.run(([[
local ev = evaluator.create(function(job) os.execute(%q) return 1 end, %q, { num_workers = 2 })
if ev then
  ev:submit({ {}, {} })
  wait_s(1)
  error("driver failed here")
end
]]):format(mark, m.name), { np = m.np, timeout = 40 })
        assert.are_not.equal(0, r.code, H.describe(r))
        assert.is_true(r.elapsed < 15, "took " .. r.elapsed .. " s")
        local clock_wait = os.time() + 2
        while os.time() < clock_wait and left(mark) > 0 do end
        assert.are.equal(0, left(mark), "a command of a job is left")
      end)

      it("close without waiting returns at once while jobs read from io.popen", function()
        local t = H.eval(([[
local ev = evaluator.create(function(job)
  local f = io.popen("sleep 30; echo late")
  local s = f:read("a")
  f:close()
  return #s
end, %q, { num_workers = 2, wait_on_exit = false })
if ev then
  ev:submit({ {}, {} })
  wait_s(0.7)
  local t0 = evaluator.mpi.wtime()
  ev:close()
  report { secs = evaluator.mpi.wtime() - t0, n = #ev.jobs_done, obj = ev.jobs_done[1] and ev.jobs_done[1].objective }
end
]]):format(m.name), { np = m.np, timeout = 40 })
        assert.is_true(t.secs < 1, "close took " .. t.secs .. " s")
        assert.are.same({ 2, "F_CANCELLED" }, { t.n, t.obj })
      end)
    end

    local targets = m.name == "mpicomm" and { "mpirun", "root", "worker" }
      or m.name == "process" and { "main", "child" } or { "main" }
    for _, target in ipairs(targets) do
      it(("kill -9 of %s: every command a job started is gone within 2 s, the run within 10 s"):format(target), function()
        local mark = marker()
        -- A killed process-pool worker is a crash: its job fails, the search goes on and ends.
        local n, secs, secs_cmd = kill_run(([[
local ev <close> = evaluator.create(function(job)
  if job.parameters.k == 1 or %s then os.execute(%q) end
  return 1
end, %q, { num_workers = 2 })
if ev then ev:submit({ { k = 1 }, { k = 2 }, { k = 3 } }); ev:gather("ALL") end
]]):format(tostring(target ~= "child"), mark, m.name), m.np, target, mark)
        assert.are.equal(0, n, ("%d processes left %.2f s after the kill"):format(n, secs))
        assert.is_true(secs_cmd < 2, "the commands went after " .. secs_cmd .. " s")
        assert.is_true(secs < 10, "the run went after " .. secs .. " s")
      end)
    end
  end)
end

describe("endings of a single process", function()
  for _, method in ipairs({ "serial", "thread", "process" }) do
    it(("SIGTERM while a %s job reads io.popen: out within a second, exit 143"):format(method), function()
      local dir = H.tmpdir()
      H.write_file(dir .. "/script.lua", H.PRELUDE .. ([[
local ev <close> = evaluator.create(function(job)
  local f = io.popen("sleep 30; echo late")
  local s = f:read("a")
  f:close()
  return 1
end, %q)
ev:submit({ {} })
ev:gather("ALL")
]]):format(method))
      local out = capture(("cd %s && (timeout -k 5 40 %s script.lua >/dev/null 2>&1 & p=$!; sleep 1; t0=$(date +%%s.%%N); "
        .. "kill -TERM $p; wait $p; rc=$?; echo rc=$rc secs=$(awk -v a=$t0 -v b=$(date +%%s.%%N) 'BEGIN{print b-a}'))")
        :format(H.quote(dir), H.quote(H.BIN)))
      H.rmdir(dir)
      local rc, secs = out:match("rc=(%d+) secs=(%S+)")
      assert.are.equal("143", rc, out)
      assert.is_true(tonumber(secs) < 1.5, out)
    end)
  end

  it("thread workers never wait on each other's commands: os.execute runs while another job reads a slow popen", function()
    local t = H.eval([[
local ev <close> = evaluator.create(function(job)
  if job.parameters.slow then
    local f = io.popen("sleep 3; echo x")
    local s = f:read("a")
    f:close()
    return 0
  end
  wait_s(0.3)
  local t0 = evaluator.mpi.wtime()
  for _ = 1, 10 do os.execute("true") end
  return evaluator.mpi.wtime() - t0
end, "thread", { num_workers = 2 })
ev:submit({ { slow = true }, { slow = false } })
local secs
for _, j in ipairs(ev:gather("ALL")) do if not j.parameters.slow then secs = j.objective end end
report { secs = secs }
]], { timeout = 40 })
    assert.is_true(t.secs < 1, "10 commands took " .. t.secs .. " s")
  end)
end)

describe("parameters nested too deep", function()
  it("are refused at submit naming the key path, or run; close never hangs", function()
    local t = H.eval([[
local ev <close> = evaluator.create(function(job) return 1 end, "mpicomm")
if ev then
  local p = {}
  local cur = p
  for _ = 1, 201 do cur.n = {}; cur = cur.n end
  local ok, err = pcall(ev.submit, ev, { { deep = p } })
  ev:close()
  report { ok = ok, err = tostring(err), done = #ev.jobs_done }
end
]], { np = 3, timeout = 40 })
    if not t.ok then assert.truthy(t.err:find("parameters.deep.n", 1, true), t.err)
    else assert.are.equal(1, t.done) end
  end)
end)

describe("create on only some ranks", function()
  it("create under `if rank == 0`: the root fails within seconds naming the rank and the fix", function()
    local r = H.run([[
if evaluator.mpi.rank() == 0 then
  local ev <close> = evaluator.create(function(job) return 1 end, "mpicomm")
  if ev then ev:submit({ {} }); ev:gather("ALL") end
end
]], { np = 3, timeout = 40 })
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.is_true(r.elapsed < 15, "took " .. r.elapsed .. " s\n" .. H.describe(r))
    assert.truthy(r.stderr:find("script.lua:%d+: rank [12] ended its script after 0 evaluator.create call%(s%) on this "
      .. "communicator, and this is call 1"), H.describe(r))
    assert.truthy(r.stderr:find("`if ev then` around the driver", 1, true), H.describe(r))
  end)

  it("a second create on the root only: it fails naming call 2", function()
    local r = H.run([[
for round = 1, (evaluator.mpi.rank() == 0 and 2 or 1) do
  local ev <close> = evaluator.create(function(job) return 1 end, "mpicomm")
  if ev then ev:submit({ {} }); ev:gather("ALL") end
end
]], { np = 3, timeout = 40 })
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.is_true(r.elapsed < 15, "took " .. r.elapsed .. " s\n" .. H.describe(r))
    assert.truthy(r.stderr:find("after 1 evaluator.create call(s) on this communicator, and this is call 2", 1, true),
      H.describe(r))
  end)

  it("ranks that end early are no false alarm: released workers, and another sub-communicator's ranks", function()
    -- World {0, 2} (color 0) makes two evaluators, the second a second after the first; world {1, 3}
    -- makes one and ends at once; in each, num_workers = 1 releases nobody (2 ranks). Then every
    -- rank makes one world evaluator with one worker: ranks 2 and 3 are released at once and end.
    local r = H.ok(H.run([[
local world = evaluator.mpi.rank()
local comm = evaluator.mpi.COMM_WORLD:split(world % 2, world)
for round = 1, (world % 2 == 0 and 2 or 1) do
  local ev <close> = evaluator.create(function(job) return job.parameters.r end, "mpicomm", { comm = comm })
  if ev then
    if round == 2 then wait_s(1) end
    ev:submit({ { r = round } })
    report { round = round, obj = ev:gather("ALL")[1].objective }
  end
end
local ev <close> = evaluator.create(function(job) wait_s(0.5) return 9 end, "mpicomm", { num_workers = 1 })
if ev then ev:submit({ {} }); report { world = ev:gather("ALL")[1].objective } end
]], { np = 4, timeout = 60 }))
    local seen = {}
    for _, t in ipairs(H.results(r)) do seen[#seen + 1] = t.world and ("world %d"):format(t.world) or ("%d=%d"):format(t.round, t.obj) end
    table.sort(seen)
    assert.are.same({ "1=1", "1=1", "2=2", "world 9" }, seen)
  end)
end)

describe("chaos: kill -9 at random moments", function()
  local runs = tonumber(os.getenv("EVL_CHAOS_RUNS")) or 10
  for _, m in ipairs(H.METHODS) do
    it(("%d runs of %s: no survivor, no hang"):format(runs, m.name), function()
      local targets = m.name == "mpicomm" and { "mpirun", "root", "worker" }
        or m.name == "process" and { "main", "child" } or { "main" }
      for i = 1, runs do
        local mark = marker(2) -- short commands: after a crash the search goes on to its end
        local target = targets[math.random(#targets)]
        local n, secs = kill_run(([[
local ev <close> = evaluator.create(function(job)
  if job.parameters.k %% 3 == 0 then os.execute(%q) end
  if job.parameters.k %% 3 == 1 then local f = io.popen(%q .. "; echo x"); f:read("a"); f:close() end
  wait_s(job.parameters.k / 50)
  return job.parameters.k
end, %q, { num_workers = 2 })
if ev then
  local list = {}
  for k = 1, 12 do list[k] = { k = k } end
  ev:submit(list)
  wait_s(%f)
  while ev.num_jobs_gathered < 12 do ev:gather("BATCH", 1) end
end
]]):format(mark, mark, m.name, math.random() * 0.5), m.np, target, mark)
        assert.are.equal(0, n, ("run %d, kill -9 of %s: %d processes left after %.2f s"):format(i, target, n, secs))
      end
    end)
  end
end)
