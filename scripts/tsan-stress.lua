-- tsan-stress.lua: a short thread-pool stress run for ThreadSanitizer (scripts/tsan-stress.sh):
-- many short jobs, jobs stopped by job_timeout, a search budget (set_timeout) that runs out with jobs
-- running and queued, and a close that cancels running jobs at once. Prints "checks N/M" and
-- exits 1 when a count is wrong (the race reports are the sanitizer's).
local evaluator = require "evaluator"
local N = tonumber(os.getenv("TSAN_JOBS")) or 3000
local checks, ok = 0, 0
local function check(cond, what)
  checks = checks + 1
  if cond then ok = ok + 1 else io.stderr:write("tsan-stress: wrong: ", what, "\n") end
end

local function run(job)
  local p = job.parameters
  -- A job that never ends by itself. It allocates: ThreadSanitizer delivers a signal only when the
  -- thread enters an intercepted call, so a pure-Lua `while true do end` could never be stopped.
  if p.kind == "spin" then while true do local _ = {} end end
  if p.kind == "error" then error("planned failure") end
  if p.kind == "busy" then local t = os.clock() + p.s; while os.clock() < t do end end
  return p.i
end

-- 1. Short jobs, some stopped by job_timeout, some failing.
do
  local ev <close> = evaluator.create(run, "thread", { num_workers = 4, job_timeout = 0.05 })
  if ev then
    local batch = {}
    for i = 1, N do
      batch[i] = { i = i, kind = i % 97 == 0 and "spin" or i % 89 == 0 and "error" or "quick" }
    end
    ev:submit(batch)
    local done, timeouts, errors = 0, 0, 0
    while done < N do
      for _, j in ipairs(ev:gather("BATCH", 50)) do
        done = done + 1
        if j.objective == "F_TIMEOUT" then timeouts = timeouts + 1 elseif j.objective == "F" then errors = errors + 1 end
      end
    end
    check(done == N, "all jobs gathered")
    -- The spinning jobs, and maybe a few short ones the sanitizer slowed past job_timeout.
    check(timeouts >= N // 97 and timeouts <= N // 97 + N // 100, ("timeouts %d"):format(timeouts))
    check(errors > 0, "failures reported")
  end
end

-- 2. A budget that runs out with jobs running and queued: they come back cancelled.
do
  local ev <close> = evaluator.create(run, "thread", { num_workers = 4 })
  if ev then
    ev:set_timeout(0.3)
    local batch = {}
    for i = 1, 2000 do batch[i] = { i = i, kind = "busy", s = 0.002 } end
    ev:submit(batch)
    local jobs = ev:gather("ALL")
    local cancelled = 0
    for _, j in ipairs(jobs) do if j.status == "CANCELLED" then cancelled = cancelled + 1 end end
    check(#jobs == 2000, "budget: all jobs back")
    check(cancelled > 0, "budget: some cancelled")
  end
end

-- 3. Closing with running jobs, without waiting: they are stopped and cancelled.
for _ = 1, 5 do
  local ev = evaluator.create(run, "thread", { num_workers = 4, wait_on_exit = false, cancel_jobs_on_exit = true })
  if ev then
    local batch = {}
    for i = 1, 200 do batch[i] = { i = i, kind = i <= 8 and "busy" or "spin", s = 0.001 } end
    ev:submit(batch)
    local first = #ev:gather("BATCH", 3)
    ev:close()
    check(first >= 3 and #ev.jobs_done >= 200 - first, ("close: %d + %d jobs came back"):format(first, #ev.jobs_done))
  end
end

-- 4. Ctrl-C (SIGINT to ourselves) while jobs run: gather raises "interrupted"; the program then
-- exits with 130 once the script ends, as the README says.
do
  local ev <close> = evaluator.create(run, "thread", { num_workers = 2 })
  if ev then
    local batch = {}
    for i = 1, 50 do batch[i] = { i = i, kind = "spin" } end
    ev:submit(batch)
    local pid = io.open("/proc/self/stat"):read("a"):match("^(%d+)")
    -- The driver is interrupted wherever it is: in os.execute already, or in gather.
    local okg, err = pcall(function() os.execute("kill -INT " .. pid); return ev:gather("ALL") end)
    check(not okg and tostring(err):find("interrupted"), "Ctrl-C: gather raised " .. tostring(err))
  end
end

print(("checks %d/%d"):format(ok, checks))
if ok ~= checks then os.exit(1) end
