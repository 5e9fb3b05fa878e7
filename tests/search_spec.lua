-- search_spec.lua: evaluator.search: spaces (sampling, seeding, validation), and the random,
-- evolution and TPE drivers under serial and mpicomm (3 ranks), through the installed binary.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

-- A mixed space with nesting, log scales, integers, choices and constants, shared by the scripts.
local SPACE = [[
local search = require "evaluator.search"
local space = search.space{
  lr = search.loguniform(1e-5, 1e-1), units = search.int(8, 512), act = search.choice{ "relu", "tanh" },
  x = search.uniform(-5, 5), fixed = 3, batch = search.logint(1, 1024),
  opt = { momentum = search.uniform(0, 1), name = "sgd" },
}
]]

describe("search spaces", function()
  it("sample gives points of the space: types, ranges, constants and nesting", function()
    local res = H.eval(SPACE .. [[
      local rng = search.rng(7)
      local bad = {}
      local acts, ints = {}, true
      for i = 1, 500 do
        local p = space:sample(rng)
        space:validate(p)
        if math.type(p.units) ~= "integer" or math.type(p.batch) ~= "integer" then ints = false end
        if p.fixed ~= 3 or p.opt.name ~= "sgd" then bad[#bad + 1] = i end
        acts[p.act] = (acts[p.act] or 0) + 1
      end
      report{ bad = #bad, ints = ints, relu = acts.relu or 0, tanh = acts.tanh or 0 }
    ]])
    assert.are.equal(0, res.bad)
    assert.is_true(res.ints)
    assert.are.equal(500, res.relu + res.tanh)
    assert.is_true(res.relu > 180 and res.tanh > 180, "both choices come up about equally often")
  end)

  it("distributions: uniform mean, log-uniform in log scale, every integer of a small range", function()
    local res = H.eval([[
      local search = require "evaluator.search"
      local s = search.space{ u = search.uniform(-5, 5), l = search.loguniform(1e-4, 1), i = search.int(1, 6),
        li = search.int(1, 1000, { log = true }) }
      local rng = search.rng(123)
      local n, su, sl, seen, small = 4000, 0, 0, {}, 0
      for _ = 1, n do
        local p = s:sample(rng)
        su, sl = su + p.u, sl + math.log(p.l, 10)
        seen[p.i] = true
        if p.li <= 31 then small = small + 1 end
      end
      local count = 0
      for _ in pairs(seen) do count = count + 1 end
      report{ mean_u = su / n, mean_log = sl / n, distinct = count, small = small / n }
    ]])
    assert.is_true(math.abs(res.mean_u) < 0.25, "uniform(-5, 5) has mean about 0: " .. res.mean_u)
    assert.is_true(math.abs(res.mean_log + 2) < 0.1, "loguniform(1e-4, 1) has log10 mean about -2: " .. res.mean_log)
    assert.are.equal(6, res.distinct)
    -- a log-integer range puts about half its mass below sqrt(1000) ~ 31.6
    assert.is_true(res.small > 0.4 and res.small < 0.6, "log-int: " .. res.small)
  end)

  it("the same seed gives the same samples, in another process and under mpicomm; another seed differs", function()
    local script = SPACE .. [[
      -- every value with all its digits, keys in order (a hash table's order differs between processes)
      local function text(t)
        local keys, parts = {}, {}
        for k in pairs(t) do keys[#keys + 1] = k end
        table.sort(keys)
        for _, k in ipairs(keys) do
          local v = t[k]
          parts[#parts + 1] = k .. "=" .. (type(v) == "table" and text(v) or math.type(v) == "float" and ("%.17g"):format(v) or tostring(v))
        end
        return "{" .. table.concat(parts, ",") .. "}"
      end
      local out = {}
      local rng = search.rng(tonumber(arg[1]))
      for i = 1, 20 do out[i] = text(space:sample(rng)) end
      local ev <close> = evaluator.create(function() return 0 end, arg[2])
      if ev then report{ samples = table.concat(out, "\n"), rank = evaluator.mpi.rank() } end
    ]]
    local a = H.eval(script, { args = { "42", "serial" } })
    local b = H.eval(script, { args = { "42", "serial" } })
    local c = H.eval(script, { args = { "42", "mpicomm" }, np = 3 })
    local d = H.eval(script, { args = { "43", "serial" } })
    assert.are.equal(a.samples, b.samples)
    assert.are.equal(a.samples, c.samples)
    assert.are_not.equal(a.samples, d.samples)
  end)

  it("validate names the key and the range; nested keys by their path; at the caller's line", function()
    local res = H.eval(SPACE .. [[
      local base = { lr = 1e-3, units = 64, act = "relu", x = 0, fixed = 3, batch = 32, opt = { momentum = 0.5, name = "sgd" } }
      local function with(k, v, sub)
        local p = require("cjson").decode(require("cjson").encode(base))
        p.units, p.batch = math.tointeger(p.units), math.tointeger(p.batch)
        if sub then p.opt[k] = v else p[k] = v end
        local ok, err = pcall(space.validate, space, p)
        return ok and "ok" or err
      end
      local ok_base = pcall(space.validate, space, base)
      local okline, lineerr = pcall(function() space:validate({}) end)
      report{ base = ok_base, range = with("units", 600), float = with("units", 8.5), choice = with("act", "gelu"),
        missing = with("lr", nil), nested = with("momentum", 2, true), const = with("fixed", 4),
        extra = with("extra", 1), typ = with("x", "zero"), line = lineerr }
    ]])
    assert.is_true(res.base)
    assert.truthy(res.range:find("params.units = 600", 1, true), res.range)
    assert.truthy(res.range:find("search.int(8, 512)", 1, true), res.range)
    assert.truthy(res.float:find("params.units", 1, true) and res.float:find("integer", 1, true), res.float)
    assert.truthy(res.choice:find('params.act = gelu is not one of search.choice{"relu", "tanh"}', 1, true), res.choice)
    assert.truthy(res.missing:find("params.lr is missing", 1, true), res.missing)
    assert.truthy(res.nested:find("params.opt.momentum = 2", 1, true) and res.nested:find("uniform(0, 1)", 1, true), res.nested)
    assert.truthy(res.const:find("params.fixed = 4", 1, true), res.const)
    assert.truthy(res.extra:find("params.extra is not in the space", 1, true), res.extra)
    assert.truthy(res.typ:find("params.x = zero is a string", 1, true), res.typ)
    assert.truthy(res.line:match("^script%.lua:%d+: validate:"), res.line)
  end)

  it("bad dimensions are clear errors at the caller's line", function()
    local res = H.eval([[
      local search = require "evaluator.search"
      local function err(f, ...) local ok, e = pcall(f, ...); return ok and "ok" or e end
      report{ order = err(search.uniform, 5, 1), log = err(search.loguniform, 0, 1), int = err(search.int, 1.5, 4),
        nan = err(search.uniform, 0 / 0, 1), choice = err(search.choice, {}), fn = err(search.space, { f = print }),
        seed = err(search.rng, 1.5) }
    ]])
    assert.truthy(res.order:find("search.uniform(5, 1): low must be below high", 1, true), res.order)
    assert.truthy(res.log:find("a log scale needs low > 0", 1, true), res.log)
    assert.truthy(res.int:find("bounds must be integers", 1, true), res.int)
    assert.truthy(res.nan:find("low must be a finite number", 1, true), res.nan)
    assert.truthy(res.choice:find("non-empty list", 1, true), res.choice)
    assert.truthy(res.fn:find("search.space: f is a function", 1, true), res.fn)
    assert.truthy(res.seed:find("seed must be an integer", 1, true), res.seed)
  end)
end)

-- The objective: a quadratic bowl with its top at x = 1, y = -2 (maximised), failing (a "F"
-- string) for act == "bad" and raising for y > 4: failures must never win nor stop the driver.
local DRIVER = [[
local search = require "evaluator.search"
local space = { x = search.uniform(-5, 5), y = search.uniform(-5, 5), act = search.choice{ "good", "bad" }, k = 2 }
local function run(job)
  local p = job.parameters
  if p.act == "bad" then return "F_BAD" end
  if p.y > 4 then error("y too large") end
  return -((p.x - 1)^2 + (p.y + 2)^2)
end
local driver, method, n = arg[1], arg[2], tonumber(arg[3])
local ev <close> = evaluator.create(run, method)
if ev then
  local best, jobs = search[driver](ev, space, { max_evals = n, seed = 5, csv = "out.csv" })
  local best_num, failed, invalid, ids = -math.huge, 0, 0, {}
  for _, job in ipairs(jobs) do
    if type(job.objective) == "number" then best_num = math.max(best_num, job.objective) else failed = failed + 1 end
    if not pcall(search.space(space).validate, search.space(space), job.parameters) then invalid = invalid + 1 end
    ids[job.id] = true
  end
  local distinct = 0
  for _ in pairs(ids) do distinct = distinct + 1 end
  report{ n = #jobs, distinct = distinct, best = best.objective, best_num = best_num, best_act = best.parameters.act,
    failed = failed, invalid = invalid, submitted = ev.num_jobs_submitted,
    first = require("cjson").encode({ jobs[1].parameters.x, jobs[2].parameters.y }) }
end
]]

describe("search drivers", function()
  for _, method in ipairs({ H.KNOWN_METHODS.serial, H.KNOWN_METHODS.mpicomm }) do
    for _, driver in ipairs({ "random", "evolution", "tpe" }) do
      it(("%s under %s: max_evals jobs, the best is the best number, failures kept and never best, CSV of every job")
        :format(driver, method.name), function()
        local r = H.run(DRIVER, { np = method.np, args = { driver, method.name, "60" }, keep = true, timeout = 120 })
        local res = H.result(r)
        local rows = H.read_csv_records(r.dir .. "/out.csv")
        H.rmdir(r.dir)
        assert.are.equal(60, res.n)
        assert.are.equal(60, res.distinct)
        assert.are.equal(60, res.submitted)
        assert.are.equal(60, #rows, "opts.csv dumps every job")
        assert.are.equal(0, res.invalid, "every proposed point is in the space")
        assert.is_true(res.failed > 0, "the space has failing points: some were tried")
        assert.are.equal(res.best_num, res.best)
        assert.are.equal("good", res.best_act)
      end)
    end
  end

  it("serial runs are reproducible: the same seed proposes the same points", function()
    for _, driver in ipairs({ "random", "evolution", "tpe" }) do
      local a = H.eval(DRIVER, { args = { driver, "serial", "30" } })
      local b = H.eval(DRIVER, { args = { driver, "serial", "30" } })
      assert.are.equal(a.first, b.first, driver)
      assert.are.equal(a.best, b.best, driver)
    end
  end)

  it("evolution and TPE beat random search on a 4-D sphere (median best of 5 seeds, 150 evaluations)", function()
    local res = H.eval([[
      local search = require "evaluator.search"
      local dims = {}
      for i = 1, 4 do dims["x" .. i] = search.uniform(-5, 5) end
      local function run(job)
        local s = 0
        for i = 1, 4 do s = s + (job.parameters["x" .. i] - 1)^2 end
        return -s
      end
      local out = {}
      for _, d in ipairs({ "random", "evolution", "tpe" }) do
        local bests = {}
        for seed = 1, 5 do
          local ev <close> = evaluator.create(run, "serial")
          local kw = { max_evals = 150, seed = seed }
          if d == "evolution" then kw.population_size, kw.sample_size = 20, 5 end
          bests[seed] = -search[d](ev, dims, kw).objective
        end
        table.sort(bests)
        out[d] = bests[3]
      end
      report(out)
    ]], { timeout = 120 })
    assert.is_true(res.evolution < res.random, ("evolution %g, random %g"):format(res.evolution, res.random))
    assert.is_true(res.tpe < res.random, ("tpe %g, random %g"):format(res.tpe, res.random))
  end)

  it("maximize = false minimises; a plain table of dimensions is a space; initial_points go first", function()
    local res = H.eval([[
      local search = require "evaluator.search"
      local ev <close> = evaluator.create(function(job) return job.parameters.x^2 end, "serial")
      local best, jobs = search.tpe(ev, { x = search.uniform(-3, 3) },
        { max_evals = 40, seed = 1, maximize = false, initial_points = { { x = 2.5 }, { x = -1 } } })
      local worst = 0
      for _, j in ipairs(jobs) do worst = math.max(worst, j.objective) end
      report{ best = best.objective, worst = worst, first = jobs[1].parameters.x, second = jobs[2].parameters.x }
    ]])
    assert.is_true(res.best < 0.05, "best " .. res.best)
    assert.is_true(res.worst > res.best)
    assert.are.equal(2.5, res.first)
    assert.are.equal(-1, res.second)
  end)

  it("timeout ends a driver: running jobs come back cancelled, and it returns what it has", function()
    local r = H.run([[
      local search = require "evaluator.search"
      -- 0.2 s jobs against a 1.5 s budget: the budget ends in the middle of the 8th round of jobs.
      -- (With 0.05 s jobs it ended on a round's boundary: both workers could be idle at that moment,
      -- nothing left to cancel, and the test failed about 1 run in 14.)
      local function run(job) wait_s(0.2) return job.parameters.x end
      local ev <close> = evaluator.create(run, arg[1])
      if ev then
        local t0 = evaluator.mpi.wtime()
        local best, jobs = search.random(ev, { x = search.uniform(0, 1) }, { timeout = 1.5, seed = 1 })
        local cancelled = 0
        for _, j in ipairs(jobs) do if j.status == "CANCELLED" then cancelled = cancelled + 1 end end
        report{ elapsed = evaluator.mpi.wtime() - t0, n = #jobs, cancelled = cancelled, best = best and best.objective }
      end
    ]], { np = 3, args = { "mpicomm" }, timeout = 60 })
    local res = H.result(r)
    assert.is_true(res.elapsed >= 1.4 and res.elapsed < 10, "elapsed " .. res.elapsed)
    assert.is_true(res.n >= 10, "jobs ran: " .. res.n)
    assert.is_true(res.cancelled >= 1, "the jobs running at the end are cancelled")
    assert.is_number(res.best)
  end)

  it("a run function that always fails: the driver ends with no best and every job kept", function()
    local res = H.eval([[
      local search = require "evaluator.search"
      local ev <close> = evaluator.create(function() error("always") end, "serial")
      local best, jobs = search.tpe(ev, { x = search.uniform(0, 1) }, { max_evals = 25, seed = 2 })
      report{ best = best == nil, n = #jobs, obj = jobs[25].objective }
    ]])
    assert.is_true(res.best)
    assert.are.equal(25, res.n)
    assert.are.equal("F", res.obj)
  end)

  it("bad options are clear errors naming the option, at the caller's line", function()
    local res = H.eval([[
      local search = require "evaluator.search"
      local ev <close> = evaluator.create(function() return 1 end, "serial")
      local s = { x = search.uniform(0, 1) }
      local function err(...) local ok, e = pcall(...); return ok and "ok" or e end
      report{ unknown = err(search.random, ev, s, { max_evals = 3, max_eval = 2 }),
        endless = err(search.tpe, ev, s, { seed = 1 }),
        neg = err(search.random, ev, s, { max_evals = -1 }),
        wrong = err(search.random, ev, s, { max_evals = 3, population_size = 4 }),
        point = err(search.evolution, ev, s, { max_evals = 3, initial_points = { { x = 0.5 }, { x = 7 } } }),
        notev = err(search.random, {}, s, { max_evals = 3 }),
        line = select(2, pcall(function() search.random(ev, s, {}) end)) }
    ]])
    assert.truthy(res.unknown:find("search.random: unknown option 'max_eval'", 1, true), res.unknown)
    assert.truthy(res.endless:find("give max_evals or timeout", 1, true), res.endless)
    assert.truthy(res.neg:find("max_evals must be a positive integer, got -1", 1, true), res.neg)
    assert.truthy(res.wrong:find("option 'population_size' is for search.evolution", 1, true), res.wrong)
    assert.truthy(res.point:find("initial_points[2]: params.x = 7 is out of range: search.uniform(0, 1)", 1, true), res.point)
    assert.truthy(res.notev:find("must be an evaluator", 1, true), res.notev)
    assert.truthy(res.line:match("^script%.lua:%d+: search%.random:"), res.line)
  end)
end)

describe("examples", function()
  local function example(name, args)
    local r = H.run("", { np = 3, script_arg = H.ROOT .. "/examples/" .. name, args = args, keep = true, timeout = 120 })
    H.ok(r)
    local rows = H.read_csv_records(r.dir .. "/results.csv")
    H.rmdir(r.dir)
    return r, rows
  end

  for _, driver in ipairs({ "random", "evolution", "tpe" }) do
    it("ackley.lua runs search." .. driver .. " under mpicomm, with Progress and a CSV of every job", function()
      local r, rows = example("ackley.lua", { driver, "60", "0" })
      assert.truthy(r.stdout:match("^" .. driver .. ": 60 jobs on 2 workers; best objective %-?[%d.]+"), H.describe(r))
      assert.are.equal(60, #rows)
      assert.truthy(r.stderr:find("[evaluator] 60/60 jobs", 1, true), H.describe(r))
    end)
  end

  it("logistic_regression.lua: TPE finds a model far better than chance on held-out data", function()
    local r, rows = example("logistic_regression.lua", { "20" })
    local acc = tonumber(r.stdout:match("best validation accuracy ([%d.]+)"))
    assert.truthy(acc, H.describe(r))
    assert.is_true(acc > 0.8, H.describe(r))
    assert.are.equal(20, #rows)
  end)

  it("external_program.lua: io.popen objectives, the slow ones stopped by job_timeout, the search goes on", function()
    local t0 = H.now()
    local r, rows = example("external_program.lua", { "9" })
    local n, timeouts = r.stdout:match("(%d+) jobs, (%d+) stopped by job_timeout")
    assert.are.equal("9", n, H.describe(r))
    assert.is_true(tonumber(timeouts) >= 1, H.describe(r))
    local cancelled = 0
    for _, row in ipairs(rows) do if row.objective == "F_TIMEOUT" then cancelled = cancelled + 1 end end
    assert.are.equal(tonumber(timeouts), cancelled)
    assert.is_true(H.now() - t0 < 30, "5-second commands were stopped after 1 s")
    assert.are.equal(0, #H.pgrep("sleep 5.000"), "no command left behind")
  end)
end)

describe("driver internals seen from outside", function()
  it("evolution: after the first population, each point is a member of the last population_size jobs with one dimension changed", function()
    local res = H.eval([[
      local search = require "evaluator.search"
      local space = search.space{ a = search.uniform(0, 1), b = search.int(1, 50), c = search.choice{ "p", "q", "r" }, d = search.loguniform(1e-3, 1) }
      local ev <close> = evaluator.create(function(job) local p = job.parameters return p.a + p.b / 50 + p.d end, "serial")
      local POP = 8
      local _, jobs = search.evolution(ev, space, { max_evals = 80, seed = 4, population_size = POP, sample_size = 3 })
      local keys, bad = { "a", "b", "c", "d" }, {}
      for k = POP + 1, #jobs do
        local ok = false
        for m = k - POP, k - 1 do -- the population when job k was proposed (serial: one at a time)
          local diff = 0
          for _, key in ipairs(keys) do
            if jobs[m].parameters[key] ~= jobs[k].parameters[key] then diff = diff + 1 end
          end
          if diff == 1 then ok = true end
        end
        if not ok then bad[#bad + 1] = k end
      end
      report{ n = #jobs, bad = #bad }
    ]])
    assert.are.equal(80, res.n)
    assert.are.equal(0, res.bad)
  end)

  it("TPE learns a categorical and a log-scale dimension (serial, fixed seed), where random search does not", function()
    local script = [=[
      local search = require "evaluator.search"
      local space = { c = search.choice{ "a", "b", "c", "d" }, lr = search.loguniform(1e-6, 1) }
      local ev <close> = evaluator.create(function(job)
        local p = job.parameters
        return (p.c == "c" and 1 or 0) - 0.1 * (math.log(p.lr, 10) + 4)^2
      end, "serial")
      local best, jobs = search[arg[1]](ev, space, { max_evals = 80, seed = 11 })
      local hits = 0
      for k = 51, 80 do if jobs[k].parameters.c == "c" then hits = hits + 1 end end
      report{ hits = hits, lr = best.parameters.lr, c = best.parameters.c }
    ]=]
    local tpe, random = H.eval(script, { args = { "tpe" } }), H.eval(script, { args = { "random" } })
    assert.is_true(tpe.hits >= 20, "TPE picks the good choice in most of its last 30 jobs: " .. tpe.hits)
    assert.is_true(random.hits < 15, "random search about a quarter of the time: " .. random.hits)
    assert.are.equal("c", tpe.c)
    assert.is_true(tpe.lr > 1e-5 and tpe.lr < 1e-3, "TPE's best lr near 1e-4: " .. tpe.lr)
  end)
end)
