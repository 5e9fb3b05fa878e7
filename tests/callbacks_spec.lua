-- callbacks_spec.lua: evaluator.callbacks: Progress (plain lines off a terminal, redrawn in place
-- on one, under `script`), Logger (a line per job) and SearchEarlyStopping (patience, threshold).
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

local function progress_lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local done, total = line:match("^%[evaluator%] (%d+)/(%d+) jobs")
    if done then out[#out + 1] = { done = tonumber(done), total = tonumber(total), line = line } end
  end
  return out
end

-- 30 jobs of about 60 ms, every fifth one failing, with a Progress, under a driver.
local PROGRESS = [[
local search = require "evaluator.search"
local callbacks = require "evaluator.callbacks"
local function run(job)
  wait_s(0.06)
  if job.parameters.i % 5 == 0 then return "F_FIFTH" end
  return job.parameters.x
end
local opts = arg[2] and { interval = tonumber(arg[2]) } or nil
local ev <close> = evaluator.create(run, arg[1], { callbacks = { callbacks.Progress(opts) } })
if ev then
  local best, jobs = search.random(ev, { x = search.uniform(0, 1), i = search.int(1, 1000) }, { max_evals = 30, seed = 3 })
  local failed = 0
  for _, j in ipairs(jobs) do if type(j.objective) ~= "number" then failed = failed + 1 end end
  io.stderr:write("FAILED ", failed, " BEST ", ("%.6g"):format(best.objective), "\n")
end
]]

describe("Progress", function()
  for _, method in ipairs({ H.KNOWN_METHODS.serial, H.KNOWN_METHODS.mpicomm }) do
    it(("off a terminal: plain periodic lines with done/total, jobs/s, best, failures, ETA (%s)"):format(method.name), function()
      local r = H.ok(H.run(PROGRESS, { np = method.np, args = { method.name, "0.2" }, timeout = 60 }))
      assert.falsy(r.stderr:find("\r", 1, true), "no carriage return off a terminal\n" .. H.describe(r))
      assert.falsy(r.stderr:find("\27[", 1, true), "no escape sequence off a terminal\n" .. H.describe(r))
      local lines = progress_lines(r.stderr)
      assert.is_true(#lines >= 3 and #lines <= 20, "a line every 0.2 s of a 1-2 s run, not one per job\n" .. H.describe(r))
      for i, l in ipairs(lines) do
        assert.are.equal(30, l.total)
        if i > 1 then assert.is_true(l.done >= lines[i - 1].done, H.describe(r)) end
        assert.truthy(l.line:match("| [%d.]+ jobs/s | best [-%d.e]+ | %d+ failed | ETA %d+s | elapsed %d+s$"), l.line)
      end
      local last = lines[#lines].line
      local failed, best = r.stderr:match("FAILED (%d+) BEST (%S+)")
      assert.truthy(last:find("30/30 jobs", 1, true), last)
      assert.truthy(last:find("| " .. failed .. " failed", 1, true), last .. "\n" .. H.describe(r))
      assert.truthy(last:find("best " .. best .. " ", 1, true), last .. "\n" .. H.describe(r))
    end)
  end

  it("on a terminal (under script): one line redrawn in place", function()
    -- script(1) gives the program a pseudo-terminal and copies what it writes to its own stdout
    local r = H.run(PROGRESS, { bin = "script", bin_args = { "-q", "-e", "-c", H.BIN .. " script.lua serial", "/dev/null" },
      script_arg = false, timeout = 60 })
    H.ok(r)
    local tty = r.stdout
    local redraws = H.count(tty, "\r[evaluator] ")
    assert.is_true(redraws >= 5, "redrawn at most 10 times a second over ~1.8 s\n" .. H.describe(r))
    assert.is_true(redraws < 30, "not once per job\n" .. H.describe(r))
    assert.are.equal(redraws, H.count(tty, "\27[K"), "each redraw clears the rest of the line")
    assert.truthy(tty:find("\r%[evaluator%] 30/30 jobs[^\r\n]*\27%[K\r?\n"), "the final line ends the line\n" .. H.describe(r))
    local before_final = tty:match("^(.*)\r%[evaluator%] 30/30")
    assert.falsy(before_final:find("\n", 1, true), "nothing but redraws before the final line\n" .. H.describe(r))
  end)

  it("in a hand-written loop (no driver): done count without a total, and a final line at close", function()
    local r = H.ok(H.run([[
      local callbacks = require "evaluator.callbacks"
      local ev <close> = evaluator.create(function(job) wait_s(0.02) return job.parameters.x end, "serial",
        { callbacks = { callbacks.Progress{ interval = 0.1 } } })
      local list = {}
      for i = 1, 25 do list[i] = { x = i } end
      ev:submit(list)
      ev:gather("ALL")
      ev:close()
    ]], { timeout = 60 }))
    local last
    for line in r.stderr:gmatch("[^\n]+") do last = line end
    assert.truthy(last and last:match("^%[evaluator%] 25 jobs | [%d.]+ jobs/s | best 25 | 0 failed | elapsed"), H.describe(r))
  end)

  it("bad options are clear errors", function()
    local res = H.eval([[
      local callbacks = require "evaluator.callbacks"
      local function err(...) local ok, e = pcall(...); return ok and "ok" or e end
      report{ a = err(callbacks.Progress, { intervall = 1 }), b = err(callbacks.Progress, { interval = -1 }),
        c = err(callbacks.SearchEarlyStopping, { patience = 0 }), d = err(callbacks.SearchEarlyStopping, { objective_threshold = "x" }) }
    ]])
    assert.truthy(res.a:find("Progress: unknown option 'intervall'", 1, true), res.a)
    assert.truthy(res.b:find("Progress: interval must be a number >= 0, got -1", 1, true), res.b)
    assert.truthy(res.c:find("patience must be a number >= 1, got 0", 1, true), res.c)
    assert.truthy(res.d:find("objective_threshold must be a number", 1, true), res.d)
  end)
end)

describe("Logger", function()
  for _, method in ipairs({ H.KNOWN_METHODS.serial, H.KNOWN_METHODS.mpicomm }) do
    it(("one line per finished job: id, status, objective, time, rank, parameters, error (%s)"):format(method.name), function()
      local r = H.ok(H.run([[
        local callbacks = require "evaluator.callbacks"
        local function run(job)
          if job.parameters.x == 3 then error("three is bad") end
          return job.parameters.x * 2
        end
        local ev <close> = evaluator.create(run, arg[1], { callbacks = { callbacks.Logger() } })
        if ev then
          local list = {}
          for i = 1, 12 do list[i] = { x = i } end
          ev:submit(list)
          ev:gather("ALL")
        end
      ]], { np = method.np, args = { method.name }, timeout = 60 }))
      local lines = {}
      for line in r.stderr:gmatch("[^\n]+") do
        if line:match("^%[evaluator%] job ") then lines[#lines + 1] = line end
      end
      assert.are.equal(12, #lines, H.describe(r))
      local seen = {}
      for _, line in ipairs(lines) do
        local n, obj, x = line:match("^%[evaluator%] job %d+%.(%d+) DONE objective=(%S+) time=[%d.]+s rank=%d+ {\"x\":(%d+)}")
        assert.truthy(n, line)
        seen[tonumber(n)] = true
        if x == "3" then
          assert.are.equal("F", obj, line)
          assert.truthy(line:find("error=.*three is bad"), line)
        else
          assert.are.equal(tostring(tonumber(x) * 2), obj, line)
        end
      end
      for n = 0, 11 do assert.is_true(seen[n] == true, "job " .. n .. " logged") end
    end)
  end
end)

-- The objective climbs for the first 8 jobs (x is the job's index) and then stays flat.
local STOPPING = [[
local search = require "evaluator.search"
local callbacks = require "evaluator.callbacks"
local function run(job) wait_s(0.01) local i = job.parameters.i return i <= 8 and i or (i % 3 == 0 and "F_X" or 0) end
local stopper = callbacks.SearchEarlyStopping(require("cjson").decode(arg[2]))
local ev <close> = evaluator.create(run, arg[1], { callbacks = { stopper } })
if ev then
  local pts = {}
  for i = 1, 100 do pts[i] = { i = i } end
  local best, jobs = search.random(ev, { i = search.int(1, 100) }, { max_evals = 100, seed = 1, initial_points = pts })
  -- where the stop came, in the order the jobs finished (under mpicomm it need not be submission order)
  local top, since, at = nil, 0, nil
  for k, j in ipairs(jobs) do
    local o = type(j.objective) == "number" and j.objective or nil
    if o and (not top or o > top) then top, since = o, 0 else since = since + 1 end
    if not at and since == stopper.patience then at = k end
  end
  report{ n = #jobs, best = best.objective, stopped = stopper.search_stopped, reason = stopper.reason, at = at }
end
]]

describe("SearchEarlyStopping", function()
  it("patience: stops a driver after that many jobs without improvement (failures included), serial", function()
    local r = H.run(STOPPING, { args = { "serial", '{"patience": 5}' } })
    local res = H.result(r)
    assert.is_true(res.stopped)
    assert.are.equal(13, res.n, "8 improving jobs, then 5 without improvement")
    assert.are.equal(13, res.at)
    assert.are.equal(8, res.best)
    assert.truthy(res.reason:find("no improvement in the last 5 jobs", 1, true), res.reason)
    assert.truthy(r.stderr:find("SearchEarlyStopping: no improvement", 1, true), H.describe(r))
  end)

  it("patience under mpicomm: stops, with at most the jobs then running besides", function()
    local res = H.eval(STOPPING, { np = 3, args = { "mpicomm", '{"patience": 5}' } })
    assert.is_true(res.stopped)
    assert.truthy(res.at, "5 jobs in a row without improvement came")
    assert.is_true(res.n >= res.at and res.n <= res.at + 2, ("stopped at job %d; then at most the 2 workers' last jobs: %d"):format(res.at, res.n))
    assert.are.equal(8, res.best)
  end)

  it("objective_threshold: stops once the best reaches it", function()
    local res = H.eval(STOPPING, { args = { "serial", '{"patience": 50, "objective_threshold": 6}' } })
    assert.is_true(res.stopped)
    assert.are.equal(6, res.n)
    assert.are.equal(6, res.best)
    assert.truthy(res.reason:find("reached the threshold 6", 1, true), res.reason)
  end)

  it("minimising: the driver's maximize = false reaches the callback", function()
    local res = H.eval([[
      local search = require "evaluator.search"
      local callbacks = require "evaluator.callbacks"
      local stopper = callbacks.SearchEarlyStopping{ objective_threshold = -5, verbose = false }
      local ev <close> = evaluator.create(function(job) return -job.parameters.i end, "serial", { callbacks = { stopper } })
      local pts = {}
      for i = 1, 20 do pts[i] = { i = i } end
      local best, jobs = search.random(ev, { i = search.int(1, 20) }, { max_evals = 20, maximize = false, initial_points = pts })
      report{ n = #jobs, best = best.objective }
    ]])
    assert.are.equal(5, res.n)
    assert.are.equal(-5, res.best)
  end)
end)
