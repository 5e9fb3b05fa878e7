-- signals_spec.lua: Ctrl-C (SIGINT) and SIGTERM. Under mpirun (3 ranks, mpicomm) with jobs that
-- wait on a command: the driver's pcall around gather sees "interrupted", its clean-up dumps the
-- CSV, every rank reaches the end of its script and ends, and each rank's own exit status is
-- 128 + the signal it got (Open MPI hands SIGINT and SIGTERM on to the ranks as SIGTERM). Without
-- mpirun: SIGINT gives 130, SIGTERM 143.
--
-- mpirun runs in the background from a small shell script that records mpirun's pid and status;
-- each rank runs under a wrapper shell that records the rank's own exit status (the wrapper only
-- waits: it passes no signal on; Open MPI signals the rank's process group).
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

local JOB_SLEEP = "sleep 30.625" -- the jobs' command; distinctive for pgrep

-- The driver: every rank notes where it is in marker.<rank>; the root gathers under pcall.
local DRIVER = ([[
local rank = evaluator.mpi.rank()
local function mark(s)
  local f = io.open("marker." .. rank, "a"); f:write(s, "\n"); f:close()
end
mark("started")
local ev = evaluator.create(function(job) os.execute(%q) return 1 end, "mpicomm")
if ev then
  ev:submit({ { x = 1 }, { x = 2 }, { x = 3 }, { x = 4 } })
  mark("submitted")
  local ok, err = pcall(ev.gather, ev, "ALL")
  mark("gather ok=" .. tostring(ok) .. " err=" .. tostring(err))
  -- clean-up, as a driver would write it
  ev:close()
  local n = #ev.jobs_done
  ev:dump_jobs_done_to_csv(".", "results.csv")
  mark("dumped " .. n)
end
mark("about to exit")
]]):format(JOB_SLEEP)

-- Runs one rank and records its exit status in status.<rank>; signals reach the rank directly
-- (Open MPI signals the process group); this shell only waits, through any signal it gets.
local WRAPPER = [[
r=${OMPI_COMM_WORLD_RANK:-x}
"$@" &
child=$!
trap 'echo TERM >> signals.$r' TERM
trap 'echo INT >> signals.$r' INT
while :; do
  wait $child
  st=$?
  kill -0 $child 2>/dev/null || break
done
echo $st > status.$r
exit $st
]]

-- Starts the command in dir in the background under `timeout`; returns nothing. The command's
-- pid is written to dir/bg.pid, its exit status to dir/bg.status when it ends.
local function start_background(dir, cmd, limit)
  local launcher = ([[
cd %s || exit 1
%s </dev/null >stdout 2>stderr &
echo $! > bg.pid
wait $!
echo $? > bg.status
]]):format(H.quote(dir), cmd)
  H.write_file(dir .. "/launch.sh", launcher)
  -- env --default-signal: the command gets SIGINT's default disposition although started in the
  -- background (where sh ignores it), as it would from a terminal
  os.execute(("timeout -k 2 %d sh %s >/dev/null 2>&1 &"):format(limit, H.quote(dir .. "/launch.sh")))
  local pid = H.wait_until(function()
    local s = H.read_file(dir .. "/bg.pid")
    return s and tonumber(s:match("%d+"))
  end, 10, 0.05)
  assert(pid, "the background command did not start")
  return pid
end

local function status_of(dir)
  local s = H.read_file(dir .. "/bg.status")
  return s and tonumber(s:match("%d+"))
end

local function read_markers(dir, np)
  local m = {}
  for r = 0, np - 1 do m[r] = H.read_file(dir .. "/marker." .. r) or "" end
  return m
end

-- One run under mpirun, signalled `sig` after ~1.5 s; the outcome, for the tests to look at.
local function mpirun_run(sig)
  local dir = H.tmpdir()
  local name = ("sig_%s_%d.lua"):format(sig, math.random(1 << 30))
  H.write_file(dir .. "/" .. name, H.PRELUDE .. DRIVER)
  H.write_file(dir .. "/wrap.sh", WRAPPER)
  local cmd = ("env --default-signal=INT,TERM %s --oversubscribe -np 3 sh wrap.sh %s %s"):format(H.MPIRUN, H.quote(H.BIN), name)
  local o = { dir = dir, name = name }
  local ok, err = pcall(function()
    local pid = start_background(dir, cmd, 40)
    -- the jobs are running once every worker rank has started and the root has submitted
    local ready = H.wait_until(function()
      local m = read_markers(dir, 3)
      return m[0]:find("submitted", 1, true) and m[1] ~= "" and m[2] ~= ""
    end, 15, 0.1)
    o.ready = ready and true or false
    H.sleep(1.0)
    local t0 = H.now()
    os.execute(("kill -%s %d"):format(sig, pid))
    o.ended = H.wait_until(function() return status_of(dir) end, 15, 0.05) ~= nil
    o.took = H.now() - t0
    -- a rank may outlive mpirun: give the ranks the same few seconds
    H.wait_until(function() return #(H.pgrep(name)) == 0 end, 3, 0.1)
    o.left, o.left_lines = H.pgrep(name)
    o.left_jobs, o.left_jobs_lines = H.pgrep(JOB_SLEEP)
    o.markers = read_markers(dir, 3)
    o.status = {}
    o.signals = {}
    for r = 0, 2 do
      o.status[r] = tonumber((H.read_file(dir .. "/status." .. r) or ""):match("%d+"))
      o.signals[r] = H.read_file(dir .. "/signals." .. r) or ""
    end
    o.stdout = H.read_file(dir .. "/stdout") or ""
    o.stderr = H.read_file(dir .. "/stderr") or ""
    o.csv_exists = H.exists(dir .. "/results.csv")
    if o.csv_exists then o.csv = H.read_csv_records(dir .. "/results.csv") end
  end)
  -- clean up whatever is left: only this run's processes carry its script's name
  H.kill_matching(name)
  H.kill_matching(JOB_SLEEP)
  local pid = tonumber((H.read_file(dir .. "/bg.pid") or ""):match("%d+"))
  if pid and not status_of(dir) then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
  H.rmdir(dir)
  assert(ok, err)
  return o
end

local function describe_run(o)
  local s = { ("signal to mpirun -> its end: %.2f s"):format(o.took or -1) }
  for r = 0, 2 do
    s[#s + 1] = ("rank %d: status %s, signals [%s], markers:\n%s"):format(r, tostring(o.status[r]),
      (o.signals[r] or ""):gsub("\n", " "), o.markers[r] or "")
  end
  s[#s + 1] = "--- mpirun stdout:\n" .. (o.stdout or "") .. "\n--- mpirun stderr:\n" .. (o.stderr or "")
  return table.concat(s, "\n")
end

for _, sig in ipairs({ "INT", "TERM" }) do
  describe(("SIG%s to mpirun (3 ranks, mpicomm) while jobs run %q"):format(sig, JOB_SLEEP), function()
    local o
    local function outcome()
      o = o or mpirun_run(sig)
      return o
    end

    it("the driver's pcall around gather sees an error containing 'interrupted'", function()
      local o = outcome()
      assert.is_true(o.ready, "the jobs never started\n" .. describe_run(o))
      assert.truthy(o.markers[0]:find("gather ok=false err=[^\n]*interrupted"), describe_run(o))
    end)

    it("the clean-up dumps the CSV: the cancelled jobs, F_CANCELLED", function()
      local o = outcome()
      assert.truthy(o.markers[0]:find("dumped 4", 1, true), describe_run(o))
      assert.is_true(o.csv_exists, "no results.csv\n" .. describe_run(o))
      assert.are.equal(4, #o.csv)
      local xs = {}
      for _, rec in ipairs(o.csv) do
        assert.are.equal("F_CANCELLED", rec.objective)
        xs[#xs + 1] = tonumber(rec["p:x"])
      end
      table.sort(xs)
      assert.are.same({ 1, 2, 3, 4 }, xs)
    end)

    it("every rank reaches the end of its script, and every process ends within a few seconds", function()
      local o = outcome()
      assert.is_true(o.ended, "mpirun did not end within 15 s of the signal\n" .. describe_run(o))
      assert.is_true(o.took < 6, ("mpirun ended %.2f s after the signal"):format(o.took))
      for r = 0, 2 do
        assert.truthy(o.markers[r]:find("about to exit", 1, true), "rank " .. r .. " did not reach its end\n" .. describe_run(o))
      end
      assert.are.equal(0, #o.left, "evaluator-lua processes left:\n" .. (o.left_lines or ""))
      assert.are.equal(0, #o.left_jobs, "job commands left:\n" .. (o.left_jobs_lines or ""))
    end)

    -- mpirun tears the job down as soon as one rank exits non-zero: the ranks leave together
    -- (evaluator-lua has them meet first), but a wrapper shell that is slower to write down its
    -- rank's status than mpirun is to kill it records nothing. Every status that was recorded must
    -- be 143, and at least one must have been.
    it("the ranks exit with status 143 (they got SIGTERM from Open MPI)", function()
      local o = outcome()
      local recorded = 0
      for r = 0, 2 do
        assert.truthy(o.signals[r]:find("TERM", 1, true), "rank " .. r .. "'s wrapper got no SIGTERM\n" .. describe_run(o))
        if o.status[r] ~= nil then
          recorded = recorded + 1
          assert.are.equal(143, o.status[r], ("rank %d's own exit status\n%s"):format(r, describe_run(o)))
        end
      end
      assert.is_true(recorded >= 1, "no rank's exit status was recorded\n" .. describe_run(o))
    end)
  end)
end

describe("signals without mpirun (one rank, serial, a spin job)", function()
  for _, c in ipairs({ { sig = "INT", code = 130 }, { sig = "TERM", code = 143 } }) do
    it(("SIG%s gives exit status %d; the driver's pcall sees 'interrupted' and its clean-up runs"):format(c.sig, c.code), function()
      local dir = H.tmpdir()
      local name = ("sig1_%s_%d.lua"):format(c.sig, math.random(1 << 30))
      H.write_file(dir .. "/" .. name, H.PRELUDE .. [[
local ev = evaluator.create(function(job) while true do end end, "serial")
ev:submit({ { x = 1 }, { x = 2 } })
local f = io.open("started", "w"); f:close()
local ok, err = pcall(ev.gather, ev, "ALL")
ev:close()
local n = #ev.jobs_done
ev:dump_jobs_done_to_csv(".", "results.csv")
f = io.open("marker", "w"); f:write("gather ok=", tostring(ok), " err=", tostring(err), " dumped ", n, "\n"); f:close()
]])
      local ok, err = pcall(function()
        local pid = start_background(dir, ("env --default-signal=INT,TERM %s %s"):format(H.quote(H.BIN), name), 30)
        -- `started` is written just before gather: wait a little more so that the job is spinning
        assert(H.wait_until(function() return H.exists(dir .. "/started") end, 10, 0.05), "the script did not start")
        H.sleep(0.5)
        local t0 = H.now()
        os.execute(("kill -%s %d"):format(c.sig, pid))
        local st = H.wait_until(function() return status_of(dir) end, 10, 0.05)
        local took = H.now() - t0
        local marker = H.read_file(dir .. "/marker") or ""
        local detail = ("status %s after %.2f s; marker: %s; stderr: %s"):format(tostring(st), took, marker,
          H.read_file(dir .. "/stderr") or "")
        assert.are.equal(c.code, st, detail)
        assert.is_true(took < 2, detail)
        assert.truthy(marker:find("gather ok=false err=[^\n]*interrupted"), detail)
        assert.truthy(marker:find("dumped 2", 1, true), detail)
        local csv = H.read_csv_records(dir .. "/results.csv")
        assert.are.equal(2, #csv)
        for _, rec in ipairs(csv) do assert.are.equal("F_CANCELLED", rec.objective) end
      end)
      H.kill_matching(name)
      H.rmdir(dir)
      assert(ok, err)
    end)
  end
end)
