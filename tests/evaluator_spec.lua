-- evaluator_spec.lua: evaluator.create, the constructors, method_kwargs, what each rank gets back,
-- communicators.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

local function with_method(m, body)
  return ("local METHOD, CLASS = %q, %q\n"):format(m.name, m.class) .. body
end

-- Runs `body` with pcall on one rank and returns the error message (or fails if none).
local function error_of(body, opts)
  local t = H.eval(([[
local ok, err = pcall(function()
%s
end)
report { ok = ok, err = tostring(err) }
]]):format(body), opts or { timeout = 30 })
  assert.is_false(t.ok, "expected an error, got none")
  return t.err
end

describe("evaluator.create", function()
  for _, m in ipairs(H.METHODS) do
    describe(("method %q on %d rank(s)"):format(m.name, m.np), function()
      it("gives the root an evaluator whose to_json names its class and num_workers", function()
        local t = H.eval(with_method(m, [[
local ev <close> = evaluator.create(function(job) return 0 end, METHOD)
if ev then
  local j = ev:to_json()
  report { rank = evaluator.mpi.rank(), mt = getmetatable(ev).__name, type = j.type, nw = j.num_workers,
    nw_field = ev.num_workers, tjt = math.type(j.num_workers) }
end
]]), { np = m.np })
        assert.are.same({ rank = 0, mt = m.class, type = m.class, nw = m.workers, nw_field = m.workers,
          tjt = "integer" }, t)
      end)

      it("constructs the same object with evaluator." .. m.class .. "(run, kw)", function()
        local t = H.eval(with_method(m, [[
local ev <close> = evaluator[CLASS](function(job) return job.parameters.x + 1 end, { search_id = nil })
if ev then
  ev:submit({ { x = 41 } })
  local done = ev:gather("ALL")
  report { type = ev:to_json().type, n = #done, obj = done[1].objective, same = getmetatable(ev) == evaluator[CLASS] }
end
]]), { np = m.np })
        assert.are.same({ type = m.class, n = 1, obj = 42, same = true }, t)
      end)

      it("runs several evaluators one after another in one script", function()
        local t = H.eval(with_method(m, [[
local sums, ranks_nil = {}, 0
for round = 1, 3 do
  local ev <close> = evaluator.create(function(job) return job.parameters.x * round end, METHOD)
  if ev then
    ev:submit({ { x = 1 }, { x = 2 }, { x = 3 } })
    local s = 0
    for _, j in ipairs(ev:gather("ALL")) do s = s + j.objective end
    sums[round] = s
  else
    ranks_nil = ranks_nil + 1
  end
end
if evaluator.mpi.rank() == 0 then report { sums = sums } end
]]), { np = m.np })
        assert.are.same({ sums = { 6, 12, 18 } }, t)
      end)
    end)
  end

  it("returns nil on the worker ranks of mpicomm once the root closes, and the evaluator on the root", function()
    local r = H.ok(H.run([[
local ev <close> = evaluator.create(function(job) return 1 end, "mpicomm")
report { rank = evaluator.mpi.rank(), is_nil = ev == nil }
]], { np = 3 }))
    local got = {}
    for _, t in ipairs(H.results(r)) do got[t.rank] = t.is_nil end
    assert.are.same({ [0] = false, [1] = true, [2] = true }, got)
  end)

  it("accepts the four method names of the contract (none is 'unknown')", function()
    for _, name in ipairs({ "serial", "thread", "process", "mpicomm" }) do
      local r = H.ok(H.run(([[
local ok, err = pcall(function() local ev = evaluator.create(function() return 0 end, %q); if ev then ev:close() end end)
if evaluator.mpi.rank() == 0 then report { ok = ok, err = tostring(err) } end
]]):format(name), { np = 2 }))
      local all = H.results(r)
      assert.is_true(#all >= 1, H.describe(r))
      for _, t in ipairs(all) do
        assert.is_nil(t.err:lower():find("unknown method", 1, true), name .. ": " .. t.err)
      end
    end
  end)

  it("a pcall around create does not let a thread worker run the rest of the script", function()
    -- README: thread workers re-run the script and are unwound once the pool closes, "nothing
    -- after create runs in a worker thread", so the line after the pcall runs once, on the driver.
    local r = H.ok(H.run([[
local ok, err = pcall(evaluator.create, function() return 0 end, "thread", { num_workers = 2 })
if ok and err then err:close() end
report { ok = ok, err = tostring(err) }
]], { timeout = 30 }))
    local all = H.results(r)
    assert.are.equal(1, #all, "the script's last line ran " .. #all .. " times\n" .. H.describe(r))
    assert.is_true(all[1].ok, all[1].err)
  end)

  it("defaults to the serial method", function()
    local t = H.eval('local ev <close> = evaluator.create(function() return 0 end); report { type = ev:to_json().type }')
    assert.are.same({ type = "SerialEvaluator" }, t)
  end)

  it('"ray" raises an error saying Ray is not available and naming the valid methods', function()
    local err = error_of('evaluator.create(function() return 0 end, "ray")')
    assert.truthy(err:find("Ray", 1, true), err)
    assert.truthy(err:lower():find("not available", 1, true), err)
    for _, name in ipairs({ "serial", "thread", "process", "mpicomm" }) do
      assert.truthy(err:find(name, 1, true), name .. " missing from: " .. err)
    end
  end)

  it("an unknown method raises an error naming it and listing the valid methods", function()
    local err = error_of('evaluator.create(function() return 0 end, "quantum")')
    assert.truthy(err:find("quantum", 1, true), err)
    for _, name in ipairs({ "serial", "thread", "process", "mpicomm" }) do
      assert.truthy(err:find(name, 1, true), name .. " missing from: " .. err)
    end
  end)

  for _, m in ipairs(H.METHODS) do
    it(("an unknown method_kwargs key raises an error naming the key (%s)"):format(m.name), function()
      local t = H.eval(with_method(m, [[
local ok, err = pcall(evaluator.create, function() return 0 end, METHOD, { num_wrokers = 2 })
if evaluator.mpi.rank() == 0 then report { ok = ok, err = tostring(err) } end
]]), { np = m.np, timeout = 30 })
      assert.is_false(t.ok)
      assert.truthy(t.err:find("num_wrokers", 1, true), t.err)
    end)
  end

  it("mpicomm on one rank raises an error saying at least 2 ranks are needed", function()
    for _, mpi in ipairs({ false, true }) do
      local t = H.eval([[
local ok, err = pcall(evaluator.create, function() return 0 end, "mpicomm")
report { ok = ok, err = tostring(err) }
]], { mpi = mpi, timeout = 30 })
      assert.is_false(t.ok)
      assert.truthy(t.err:find("at least 2", 1, true), t.err)
    end
  end)

  it("evaluator.FAIL_RETURN_VALUE is \"F\"", function()
    assert.are.same({ v = "F" }, H.eval('report { v = evaluator.FAIL_RETURN_VALUE }'))
  end)

  it("evaluator.mpi gives rank, size, wtime and COMM_WORLD on every rank", function()
    local r = H.ok(H.run([[
local w = evaluator.mpi.COMM_WORLD
local t1 = evaluator.mpi.wtime(); wait_s(0.05); local t2 = evaluator.mpi.wtime()
report { rank = evaluator.mpi.rank(), size = evaluator.mpi.size(), crank = w:rank(), csize = w:size(),
  rt = math.type(evaluator.mpi.rank()), dt = t2 - t1 }
]], { np = 4 }))
    local seen = {}
    for _, t in ipairs(H.results(r)) do
      assert.are.equal(4, t.size)
      assert.are.equal(4, t.csize)
      assert.are.equal(t.rank, t.crank)
      assert.are.equal("integer", t.rt)
      assert.is_true(t.dt >= 0.05 and t.dt < 5, "wtime advanced by " .. t.dt)
      seen[#seen + 1] = t.rank
    end
    table.sort(seen)
    assert.are.same({ 0, 1, 2, 3 }, seen)
  end)

  it("runs mpicomm on COMM_WORLD:split(...) sub-communicators with a non-zero root", function()
    -- 5 ranks: color 0 = world {0, 2, 4}, root its local rank 2 (world 4);
    --          color 1 = world {1, 3},    root its local rank 1 (world 3).
    local r = H.ok(H.run([[
local world = evaluator.mpi.rank()
local color = world % 2
local comm = evaluator.mpi.COMM_WORLD:split(color, world)
local root = comm:size() - 1
local ev <close> = evaluator.create(function(job) return evaluator.mpi.rank() end, "mpicomm",
  { comm = comm, root = root })
if ev then
  local list = {}
  for i = 1, 8 do list[i] = { i = i } end
  ev:submit(list)
  local ran, meta_ok = {}, true
  for _, j in ipairs(ev:gather("ALL")) do ran[#ran + 1] = j.objective end
  table.sort(ran)
  local uniq = {}
  for _, x in ipairs(ran) do if uniq[#uniq] ~= x then uniq[#uniq + 1] = x end end
  report { world = world, color = color, crank = comm:rank(), csize = comm:size(), nw = ev.num_workers,
    ran_on = uniq, n = #ran }
end
]], { np = 5 }))
    local by_color = {}
    for _, t in ipairs(H.results(r)) do
      assert.is_nil(by_color[t.color], "one root per color\n" .. H.describe(r))
      by_color[t.color] = t
    end
    assert.are.same({ world = 4, color = 0, crank = 2, csize = 3, nw = 2, ran_on = { 0, 2 }, n = 8 }, by_color[0])
    assert.are.same({ world = 3, color = 1, crank = 1, csize = 2, nw = 1, ran_on = { 1 }, n = 8 }, by_color[1])
  end)

  it("mpicomm on COMM_WORLD with root = 2 gives the evaluator to world rank 2", function()
    local r = H.ok(H.run([[
local ev <close> = evaluator.create(function(job) return evaluator.mpi.rank() end, "mpicomm", { root = 2 })
if ev then
  ev:submit({ { a = 1 }, { a = 2 }, { a = 3 }, { a = 4 } })
  local ranks = {}
  for _, j in ipairs(ev:gather("ALL")) do ranks[j.objective] = true end
  report { rank = evaluator.mpi.rank(), nw = ev.num_workers, r0 = ranks[0] or false, r1 = ranks[1] or false,
    r2 = ranks[2] or false }
end
]], { np = 3 }))
    local all = H.results(r)
    assert.are.equal(1, #all, H.describe(r))
    assert.are.same({ rank = 2, nw = 2, r0 = true, r1 = true, r2 = false }, all[1])
  end)

  it("num_workers smaller than size - 1 uses only that many workers and the others still end", function()
    local r = H.ok(H.run([[
local ev <close> = evaluator.create(function(job) wait_s(0.02); return evaluator.mpi.rank() end, "mpicomm",
  { num_workers = 2 })
if ev then
  local list = {}
  for i = 1, 12 do list[i] = { i = i } end
  ev:submit(list)
  local ranks, n = {}, 0
  for _, j in ipairs(ev:gather("ALL")) do
    if not ranks[j.objective] then n = n + 1 end
    ranks[j.objective] = true
  end
  report { nw = ev.num_workers, json_nw = ev:to_json().num_workers, distinct = n, root_ran = ranks[0] or false }
end
]], { np = 5 }))
    assert.are.same({ nw = 2, json_nw = 2, distinct = 2, root_ran = false }, H.result(r))
  end)
end)
