-- timeouts_spec.lua: job_timeout, ev:set_timeout (the search's budget) and job_memory_limit, for
-- every method of H.METHODS: jobs are really stopped (a pure-Lua loop, a loop that hides in pcall,
-- a command run by os.execute or io.popen), come back CANCELLED with F_TIMEOUT / F_CANCELLED or
-- F_MEMORY, no command is left behind, and the workers go on serving jobs.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

-- Distinctive commands, so that pgrep finds only this spec's.
local SLEEP_EXEC = "sleep 61.25"
local SLEEP_POPEN = "sleep 61.75"

-- The run function every script here uses; job.parameters.k says what the job does.
local RUN = ([[function(job)
  local k = job.parameters.k
  if k == "spin" then while true do end
  elseif k == "pspin" then while true do pcall(function() while true do end end) end
  elseif k == "exec" then os.execute(%q); return "exec returned"
  elseif k == "popen" then local p = io.popen(%q); local s = p:read("a"); p:close(); return "popen returned"
  elseif k == "mem" then local t, i = {}, 0; while true do i = i + 1; t[i] = ("x"):rep(16384) .. i end
  elseif k == "ok" then wait_s(job.parameters.s or 0); return { objective = job.parameters.v, metadata = { me = evaluator.mpi.rank() } }
  end
  return "F_unknown_kind"
end]]):format(SLEEP_EXEC, SLEEP_POPEN)

-- Lua source, run on the root, that reports the `pgrep -f` lines of the test's commands.
local PGREP_SRC = ([[
local function leftovers()
  local p = io.popen("pgrep -af %s; pgrep -af %s")
  local s = p:read("a")
  p:close()
  return s
end
]]):format(H.quote(H.pgrep_pattern(SLEEP_EXEC)), H.quote(H.pgrep_pattern(SLEEP_POPEN)))

local function workers_of(m)
  return (m.name == "thread" or m.name == "process") and 2 or m.workers
end

local function on_root(m, kw, body, opts)
  local src = ([[
%s
local ev <close> = evaluator.create(%s, %q, %s)
if ev then
%s
end
]]):format(PGREP_SRC, RUN, m.name, kw, body)
  opts = opts or {}
  opts.np = opts.np or m.np
  opts.timeout = opts.timeout or 40
  return H.eval(src, opts)
end

local function assert_no_leftovers()
  local pids, lines = H.pgrep(SLEEP_EXEC)
  local pids2, lines2 = H.pgrep(SLEEP_POPEN)
  H.kill_matching(SLEEP_EXEC)
  H.kill_matching(SLEEP_POPEN)
  assert.are.equal(0, #pids + #pids2, "commands left running after the run:\n" .. lines .. "\n" .. lines2)
end

for _, m in ipairs(H.METHODS) do
  local W = workers_of(m)
  local kw_workers = (m.name == "thread" or m.name == "process") and ("num_workers = %d, "):format(W) or ""

  describe(("timeouts with method %q on %d rank(s)"):format(m.name, m.np), function()
    -- One run per method for job_timeout: every kind of stuck job, then ordinary jobs.
    local jt
    local function job_timeout_run()
      if jt then return jt end
      jt = on_root(m, ("{ %sjob_timeout = 1 }"):format(kw_workers), ([[
local W = %d
local kinds = { "spin", "pspin", "exec", "popen" }
local list = {}
for i, k in ipairs(kinds) do list[i] = { k = k } end
local t0 = evaluator.mpi.wtime()
ev:submit(list)
local stuck = {}
for _, j in ipairs(ev:gather("ALL")) do
  stuck[j.parameters.k] = { status = j.status, obj = j.objective, ran = j.metadata.timestamp_end - j.metadata.timestamp_start,
    rank = j.metadata.rank }
end
local stuck_elapsed = evaluator.mpi.wtime() - t0
local left_in_run = leftovers()
-- then the workers serve ordinary jobs: twice as many as workers, 0.15 s each, so every worker gets some
local next_jobs = {}
for i = 1, 2 * W do next_jobs[i] = { k = "ok", v = i, s = 0.15 } end
ev:submit(next_jobs)
local after = {}
for _, j in ipairs(ev:gather("ALL")) do
  after[#after + 1] = { status = j.status, obj = j.objective, rank = j.metadata.rank }
end
table.sort(after, function(a, b) return a.obj < b.obj end)
report { stuck = stuck, stuck_elapsed = stuck_elapsed, left_in_run = left_in_run, after = after }
]]):format(W))
      return jt
    end

    it("job_timeout = 1: a spin loop, a spin loop inside pcall, os.execute and io.popen of a sleep come back CANCELLED / F_TIMEOUT", function()
      local t = job_timeout_run()
      for _, k in ipairs({ "spin", "pspin", "exec", "popen" }) do
        local j = t.stuck[k]
        assert.is_table(j, k .. " did not come back")
        assert.are.same({ "CANCELLED", "F_TIMEOUT" }, { j.status, j.obj }, k)
        assert.is_true(j.ran >= 0.9 and j.ran < 2.5, ("%s ran %.3f s for a 1 s job_timeout"):format(k, j.ran))
      end
      -- serial runs the four one after the other; a pool of W workers, W at a time
      local rounds = math.ceil(4 / (m.name == "serial" and 1 or W))
      assert.is_true(t.stuck_elapsed < rounds * 2.0 + 1.0,
        ("the four stuck jobs took %.2f s to come back (%d rounds of a 1 s timeout)"):format(t.stuck_elapsed, rounds))
    end)

    it("job_timeout: the command a stopped job ran is gone when the job comes back, and after the run", function()
      local t = job_timeout_run()
      assert.are.equal("", t.left_in_run, "still running when gather returned:\n" .. t.left_in_run)
      assert_no_leftovers()
    end)

    it("job_timeout: the workers serve the next jobs normally", function()
      local t = job_timeout_run()
      assert.are.equal(2 * W, #t.after)
      local ranks = {}
      for i, j in ipairs(t.after) do
        assert.are.same({ "DONE", i }, { j.status, j.obj }, "job " .. i)
        ranks[j.rank] = true
      end
      if m.name ~= "serial" then
        local want = {}
        for w = 1, W do want[#want + 1] = w end
        local got = {}
        for r in pairs(ranks) do got[#got + 1] = r end
        table.sort(got)
        assert.are.same(want, got, "every worker served a job after its job timed out")
      end
    end)

    -- One run per method for the search's budget.
    local bt
    local function budget_run()
      if bt then return bt end
      bt = on_root(m, ("{ %s}"):format(kw_workers), [[
local before = ev.time_left
local before_timeout = ev.timeout
local t0 = evaluator.mpi.wtime()
ev:set_timeout(1.5)
local right_after = ev.time_left
ev:submit({ { k = "spin" }, { k = "exec" }, { k = "spin" }, { k = "exec" }, { k = "popen" } })
local jobs = {}
for _, j in ipairs(ev:gather("ALL")) do
  jobs[#jobs + 1] = { k = j.parameters.k, status = j.status, obj = j.objective, rank = j.metadata.rank }
end
local elapsed = evaluator.mpi.wtime() - t0
local after = ev.time_left
local left_in_run = leftovers()
local ok, err = pcall(ev.submit, ev, { { k = "ok", v = 1 } })
local again = ev:gather("ALL")
report { before_t = type(before), before_timeout_t = type(before_timeout), right_after = right_after, jobs = jobs,
  elapsed = elapsed, after = after, timeout = ev.timeout, ok = ok, err = tostring(err), again = #again,
  submitted = ev.num_jobs_submitted, left_in_run = left_in_run }
]])
      return bt
    end

    it("ev.time_left is nil before set_timeout; right after set_timeout(1.5) it is between 0 and 1.5", function()
      local t = budget_run()
      assert.are.equal("nil", t.before_t)
      assert.are.equal("nil", t.before_timeout_t)
      assert.is_number(t.right_after)
      assert.is_true(t.right_after > 0 and t.right_after <= 1.5, "time_left right after set_timeout(1.5): " .. t.right_after)
    end)

    it("set_timeout(1.5): gather ALL returns within ~3 s, running and queued jobs CANCELLED / F_CANCELLED, no command left", function()
      local t = budget_run()
      assert.is_true(t.elapsed >= 1.3 and t.elapsed < 3.0, ("gather ALL returned %.2f s after set_timeout(1.5)"):format(t.elapsed))
      assert.are.equal(5, #t.jobs)
      for _, j in ipairs(t.jobs) do
        assert.are.same({ "CANCELLED", "F_CANCELLED" }, { j.status, j.obj }, j.k)
      end
      assert.are.equal("", t.left_in_run, "still running when gather returned:\n" .. t.left_in_run)
      assert_no_leftovers()
    end)

    it("after the budget: submit raises TimeoutReached, ev.timeout == 1.5, ev.time_left is 0", function()
      local t = budget_run()
      assert.is_false(t.ok)
      assert.truthy(t.err:find("TimeoutReached", 1, true), t.err)
      assert.are.equal(5, t.submitted, "the refused submit added no job")
      assert.are.equal(0, t.again)
      assert.are.equal(1.5, t.timeout)
      assert.is_number(t.after)
      assert.is_true(t.after >= 0 and t.after < 0.05, "time_left after the budget ran out: " .. t.after)
    end)

    it("set_timeout: jobs that never started have metadata.rank = -1 (README: 'Jobs that never started')", function()
      local t = budget_run()
      -- at most one job per worker (one in all for serial) can have started before the budget ran out
      local started_max = m.name == "serial" and 1 or W
      local never = 0
      local ranks = {}
      for _, j in ipairs(t.jobs) do
        if j.rank == -1 then never = never + 1 end
        ranks[#ranks + 1] = tostring(j.rank)
      end
      assert.is_true(never >= #t.jobs - started_max,
        ("%d of %d jobs have rank -1; at most %d can have started; ranks: %s"):format(never, #t.jobs, started_max,
          table.concat(ranks, ",")))
    end)

    it("job_memory_limit = 50e6: a job that grows a table without bound gets F_MEMORY with metadata.error; the next job is DONE", function()
      local t = on_root(m, "{ job_memory_limit = 50000000 }", [[
local out = {}
for round = 1, 1 do
  ev:submit({ { k = "mem" } })
  local j = ev:gather("ALL")[1]
  out[#out + 1] = { what = "mem", status = j.status, obj = j.objective, err = j.metadata.error }
  ev:submit({ { k = "ok", v = round } })
  j = ev:gather("ALL")[1]
  out[#out + 1] = { what = "ok", status = j.status, obj = j.objective, err = j.metadata.error }
end
report { out = out, mem = collectgarbage("count") * 1024 }
]])
      assert.are.equal(2, #t.out)
      for i, r in ipairs(t.out) do
        if r.what == "mem" then
          assert.are.equal("F_MEMORY", r.obj, "round " .. i)
          assert.is_string(r.err, "metadata.error of the F_MEMORY job")
          assert.truthy(r.err:lower():find("memory", 1, true), r.err)
        else
          assert.are.same({ "DONE", (i // 2) }, { r.status, r.obj }, "the job after F_MEMORY")
          assert.is_nil(r.err)
        end
      end
      if m.name == "serial" then
        -- the job ran in the driver's own state: its memory was given back
        assert.is_true(t.mem < 50e6, ("the driver holds %.0f bytes after an F_MEMORY job"):format(t.mem))
      end
    end)
  end)
end
