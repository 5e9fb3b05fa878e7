-- exit_spec.lua: what ev:close() does with running and queued jobs under each combination of
-- wait_on_exit and cancel_jobs_on_exit (mpicomm on 3 ranks, thread and process with 2 workers),
-- jobs that come back during close (on_gather, jobs_done, the CSV), abort_on_exit, and an
-- evaluator the script leaves open.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

local SLEEP = "sleep 2.0625" -- the running jobs' command; distinctive for pgrep

local POOLS = {}
for _, m in ipairs(H.METHODS) do
  if m.name ~= "serial" then POOLS[#POOLS + 1] = m end
end

-- Two slow jobs (one per worker: 2 workers for every method here) and three quick ones queued
-- behind them; the driver lets the slow ones start, then closes and reports what close did.
-- A slow job writes slow-<n>.done in the run's directory when its command has ended.
local function close_script(m, wait, cancel)
  return ([[
local gathered, done_cb, closed = {}, {}, 0
local cb = {}
function cb:on_gather(list, others) for _, j in ipairs(list) do gathered[#gathered + 1] = j.id end end
function cb:on_done(job) done_cb[#done_cb + 1] = job.id end
function cb:on_close() closed = closed + 1 end
local function run(job)
  if job.parameters.k == "slow" then
    local t0 = evaluator.mpi.wtime()
    local ok = os.execute(%q)
    local f = io.open("slow-" .. job.parameters.n .. ".done", "w")
    f:write(("%%s %%.3f"):format(tostring(ok), evaluator.mpi.wtime() - t0)); f:close()
    return 1
  end
  return 2
end
local ev = evaluator.create(run, %q, { wait_on_exit = %s, cancel_jobs_on_exit = %s, callbacks = { cb }%s })
if ev then
  ev:submit({ { k = "slow", n = 1 }, { k = "slow", n = 2 }, { k = "quick", n = 3 }, { k = "quick", n = 4 }, { k = "quick", n = 5 } })
  local t_start = evaluator.mpi.wtime()
  os.execute("sleep 0.4")
  local t0 = evaluator.mpi.wtime()
  ev:close()
  local close_s = evaluator.mpi.wtime() - t0
  local jobs = {}
  for _, j in ipairs(ev.jobs_done) do
    jobs[#jobs + 1] = { id = j.id, k = j.parameters.k, n = j.parameters.n, status = j.status, obj = tostring(j.objective),
      ran = j.metadata.timestamp_end - j.metadata.timestamp_start, rank = j.metadata.rank }
  end
  table.sort(jobs, function(a, b) return a.n < b.n end)
  local n_done = #ev.jobs_done
  ev:dump_jobs_done_to_csv(".", "results.csv")
  report { close_s = close_s, pre_close = t0 - t_start, jobs = jobs, gathered = gathered, done_cb = done_cb, closed = closed,
    n_done = n_done, after_dump = #ev.jobs_done }
end
]]):format(SLEEP, m.name, tostring(wait), tostring(cancel), m.name == "mpicomm" and "" or ", num_workers = 2")
end

local COMBOS = { { true, true }, { false, true }, { true, false }, { false, false } }

-- The four combinations of one method run at once (they mostly wait); memoized per method.
local outcomes = {}
local function run_close(m, wait, cancel)
  if not outcomes[m.name] then
    local list = {}
    for i, c in ipairs(COMBOS) do list[i] = { close_script(m, c[1], c[2]), { np = m.np, timeout = 30, keep = true } } end
    local results = H.run_parallel(list)
    local res = {}
    for i, r in ipairs(results) do
      local ok, t = pcall(H.result, r)
      local out = { r = r, t = ok and t or nil, err = not ok and t or nil }
      if ok then
        out.csv = H.exists(r.dir .. "/results.csv") and H.read_csv_records(r.dir .. "/results.csv") or {}
        if not COMBOS[i][1] and not COMBOS[i][2] then
          -- the workers finish their current job: give them until it would have ended
          H.wait_until(function() return H.exists(r.dir .. "/slow-1.done") and H.exists(r.dir .. "/slow-2.done") end, 3, 0.1)
        end
        out.slow_done = { H.exists(r.dir .. "/slow-1.done"), H.exists(r.dir .. "/slow-2.done") }
        -- what the job saw: "true <seconds>" when its command ran to its end
        out.slow_text = { H.read_file(r.dir .. "/slow-1.done") or "", H.read_file(r.dir .. "/slow-2.done") or "" }
      end
      H.rmdir(r.dir)
      res[tostring(COMBOS[i][1]) .. "," .. tostring(COMBOS[i][2])] = out
    end
    -- the four runs used the same command; none may be left
    local left, lines = H.pgrep(SLEEP)
    H.kill_matching(SLEEP)
    res.leftovers = #left > 0 and lines or nil
    outcomes[m.name] = res
  end
  local res = outcomes[m.name]
  local o = res[tostring(wait) .. "," .. tostring(cancel)]
  o.leftovers = res.leftovers
  return o
end

-- The driver closes 0.4 s after submitting; on a machine so loaded that this took far longer, the
-- slow jobs may have ended before close: say so rather than blame close.
local function assert_closed_early(t)
  assert.is_true(t.pre_close < 1.2, ("the driver's 0.4 s sleep before close took %.2f s (machine overloaded?)"):format(t.pre_close))
end

local function describe_jobs(t)
  local s = {}
  for _, j in ipairs(t.jobs) do
    s[#s + 1] = ("%s %s n=%s %s %s ran %.3f s on rank %s"):format(j.id, j.k, j.n, j.status, j.obj, j.ran, tostring(j.rank))
  end
  return ("close took %.3f s, %.3f s after submit; jobs:\n  "):format(t.close_s, t.pre_close) .. table.concat(s, "\n  ")
end

local function by_n(list)
  local out = {}
  for _, j in ipairs(list) do out[j.n] = j end
  return out
end

-- Every job close brought back went through on_done and on_gather, is in jobs_done and in the CSV.
local function assert_reported(o, n_expected)
  local t = o.t
  assert.are.equal(n_expected, t.n_done, "jobs_done after close")
  assert.are.equal(n_expected, #t.gathered, "jobs passed to on_gather during close")
  assert.are.equal(n_expected, #t.done_cb, "jobs passed to on_done during close")
  assert.are.equal(0, t.after_dump, "dump empties jobs_done")
  assert.are.equal(1, t.closed, "on_close called once")
  assert.are.equal(n_expected, #o.csv, "rows of the CSV dumped after close")
  local ids = {}
  for _, j in ipairs(t.jobs) do ids[j.id] = j end
  for _, id in ipairs(t.gathered) do assert.is_table(ids[id], "on_gather got " .. id .. " which is not in jobs_done") end
  for _, rec in ipairs(o.csv) do
    local id = "0." .. rec.job_id
    local j = ids[id]
    assert.is_table(j, "CSV row for job " .. id .. " not in jobs_done")
    assert.are.equal(j.k, rec["p:k"])
    assert.are.equal(j.obj, rec.objective, "objective of " .. id .. " in the CSV")
  end
end

for _, m in ipairs(POOLS) do
  describe(("close with method %q on %d rank(s), 2 workers"):format(m.name, m.np), function()
    it("wait_on_exit = true, cancel_jobs_on_exit = true: close waits for the running jobs (DONE); queued ones CANCELLED / F_CANCELLED", function()
      local o = run_close(m, true, true)
      assert(o.t, o.err)
      local t = o.t
      assert_closed_early(t)
      assert.is_true(t.close_s >= 1.2 and t.close_s < 3.5, ("close took %.2f s; the running jobs had ~1.6 s left"):format(t.close_s))
      local j = by_n(t.jobs)
      for n = 1, 2 do
        assert.is_table(j[n], "slow job " .. n .. " did not come back")
        assert.are.same({ "DONE", "1" }, { j[n].status, j[n].obj }, "slow job " .. n .. "\n" .. describe_jobs(t))
      end
      for n = 3, 5 do
        assert.is_table(j[n], "queued job " .. n .. " did not come back")
        assert.are.same({ "CANCELLED", "F_CANCELLED" }, { j[n].status, j[n].obj }, "queued job " .. n .. "\n" .. describe_jobs(t))
      end
      assert.are.same({ true, true }, o.slow_done)
      for i = 1, 2 do assert.truthy(o.slow_text[i]:find("^true "), "slow job " .. i .. ": " .. o.slow_text[i]) end
      assert_reported(o, 5)
      assert.is_nil(o.leftovers)
    end)

    it("wait_on_exit = false, cancel_jobs_on_exit = true: close returns within ~1 s, every job CANCELLED, the commands stopped", function()
      local o = run_close(m, false, true)
      assert(o.t, o.err)
      local t = o.t
      assert_closed_early(t)
      assert.is_true(t.close_s < 1.0, ("close took %.2f s"):format(t.close_s))
      assert.are.equal(5, #t.jobs)
      for _, j in ipairs(t.jobs) do
        assert.are.same({ "CANCELLED", "F_CANCELLED" }, { j.status, j.obj }, "job " .. j.n .. "\n" .. describe_jobs(t))
      end
      assert.are.same({ false, false }, o.slow_done, "a stopped job went on after its command")
      assert_reported(o, 5)
      assert.is_nil(o.leftovers, o.leftovers)
    end)

    it("wait_on_exit = true, cancel_jobs_on_exit = false: close runs every job", function()
      local o = run_close(m, true, false)
      assert(o.t, o.err)
      local t = o.t
      assert_closed_early(t)
      assert.is_true(t.close_s >= 1.2 and t.close_s < 3.5, ("close took %.2f s"):format(t.close_s))
      local j = by_n(t.jobs)
      for n = 1, 5 do
        assert.is_table(j[n], "job " .. n .. " did not come back")
        assert.are.same({ "DONE", n <= 2 and "1" or "2" }, { j[n].status, j[n].obj }, "job " .. n .. "\n" .. describe_jobs(t))
      end
      assert_reported(o, 5)
      assert.is_nil(o.leftovers)
    end)

    it("wait_on_exit = false, cancel_jobs_on_exit = false: close returns at once; the workers finish their current job", function()
      local o = run_close(m, false, false)
      assert(o.t, o.err)
      local t = o.t
      assert_closed_early(t)
      assert.is_true(t.close_s < 0.5, ("close took %.2f s to return (README: 'with neither, close returns at once')"):format(t.close_s))
      assert.are.same({ true, true }, o.slow_done, "the running jobs were finished by their workers")
      for i = 1, 2 do
        local ok, secs = o.slow_text[i]:match("^(%S+) ([%d.]+)$")
        assert.are.equal("true", ok, "slow job " .. i .. ": its command did not run to its end: " .. o.slow_text[i])
        assert.is_true(tonumber(secs) >= 2.0, "slow job " .. i .. ": its command ran " .. o.slow_text[i])
      end
      assert.is_nil(o.leftovers)
    end)
  end)
end

describe("exit", function()
  it("abort_on_exit = true (mpicomm, 3 ranks): every rank ends quickly with a non-zero status, no job command left", function()
    local name = ("abort_%d.lua"):format(math.random(1 << 30))
    local r = H.run(([[
local ev = evaluator.create(function(job) os.execute("sleep 30.375") return 1 end, "mpicomm", { abort_on_exit = true })
if ev then
  ev:submit({ { x = 1 }, { x = 2 } })
  os.execute("sleep 0.5")
  ev:close()
  print("ROOT AFTER CLOSE")
end
print("LAST LINE")
]]), { np = 3, timeout = 30, name = name })
    local left, lines = H.pgrep(name)
    local left2, lines2 = H.pgrep("sleep 30.375")
    H.kill_matching(name)
    H.kill_matching("sleep 30.375")
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.is_true(r.elapsed < 8, ("mpirun ended %.1f s after start (the jobs sleep 30 s)"):format(r.elapsed))
    assert.is_nil(r.stdout:find("ROOT AFTER CLOSE", 1, true), H.describe(r))
    assert.is_nil(r.stdout:find("LAST LINE", 1, true), "a rank went on with the script:\n" .. H.describe(r))
    assert.are.equal(0, #left, "ranks left:\n" .. lines)
    assert.are.equal(0, #left2, "job commands left:\n" .. lines2)
  end)

  for _, m in ipairs(POOLS) do
    it(("an evaluator left open at the end of the script is closed by the runtime (%s)"):format(m.name), function()
      local r = H.run(([[
local closed = false
local cb = {}
function cb:on_done(job) io.write("ON_DONE ", job.id, " ", tostring(job.status), "\n") end
function cb:on_close() io.write("ON_CLOSE rank ", evaluator.mpi.rank(), "\n") end
local ev = evaluator.create(function(job) os.execute("sleep 0.3") return job.parameters.x end, %q, { callbacks = { cb } })
if ev then
  ev:submit({ { x = 1 } })
  ev:gather("ALL")
  ev:submit({ { x = 2 } }) -- never gathered by the script
  os.execute("sleep 0.1")  -- it has started (it runs 0.3 s) when the script ends
end
io.write("LAST LINE rank ", evaluator.mpi.rank(), " ", tostring(ev ~= nil), "\n")
]]):format(m.name), { np = m.np, timeout = 30 })
      H.ok(r)
      assert.are.equal(1, H.count(r.stdout, "LAST LINE rank 0 true"), H.describe(r))
      assert.are.equal(1, H.count(r.stdout, "ON_CLOSE rank 0"), H.describe(r))
      assert.are.equal(1, H.count(r.stdout, "ON_CLOSE"), "on_close runs on the root only\n" .. H.describe(r))
      local last = r.stdout:find("LAST LINE rank 0", 1, true)
      local close = r.stdout:find("ON_CLOSE", 1, true)
      assert.is_true(last < close, "the runtime closes after the script's last line\n" .. H.describe(r))
      -- the job left running is waited for (wait_on_exit defaults to true) and goes through on_done
      assert.are.equal(1, H.count(r.stdout, "ON_DONE 0.1 DONE"), H.describe(r))
      if m.name == "mpicomm" then
        -- workers: create returns nil once the root closed, and they go on to the end of the script
        assert.are.equal(1, H.count(r.stdout, "LAST LINE rank 1 false"), H.describe(r))
        assert.are.equal(1, H.count(r.stdout, "LAST LINE rank 2 false"), H.describe(r))
      else
        -- nothing after create runs in a worker thread or worker process
        assert.are.equal(1, H.count(r.stdout, "LAST LINE"), H.describe(r))
      end
      assert.is_true(r.elapsed < 10, "ended " .. r.elapsed .. " s after start")
    end)
  end
end)
