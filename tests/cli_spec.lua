-- cli_spec.lua: the evaluator-lua command: options, loading the script, errors, `arg`, serial use.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

describe("evaluator-lua command line", function()
  it("--help prints a usage on stdout and exits 0", function()
    for _, opt in ipairs({ "--help", "-h" }) do
      local r = H.run("", { script_arg = false, bin_args = { opt }, timeout = 20 })
      assert.are.equal(0, r.code, H.describe(r))
      assert.truthy(r.stdout:lower():find("usage", 1, true), H.describe(r))
      assert.truthy(r.stdout:find("evaluator-lua", 1, true), H.describe(r))
      assert.are.equal("", r.stderr, H.describe(r))
    end
  end)

  it("--version prints one line with the name and a version number and exits 0", function()
    for _, opt in ipairs({ "--version", "-v" }) do
      local r = H.run("", { script_arg = false, bin_args = { opt }, timeout = 20 })
      assert.are.equal(0, r.code, H.describe(r))
      assert.truthy(r.stdout:match("^evaluator%-lua %d+%.%d+[^\n]*\n$"), H.describe(r))
    end
  end)

  it("an unknown option is an error naming it, with a non-zero exit status", function()
    local r = H.run("", { script_arg = false, bin_args = { "--no-such-option" }, timeout = 20 })
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.truthy(r.stderr:find("--no-such-option", 1, true), H.describe(r))
  end)

  it("no script at all is an error with a non-zero exit status", function()
    local r = H.run("", { script_arg = false, timeout = 20 })
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.are_not.equal("", r.stderr, H.describe(r))
  end)

  for _, np in ipairs({ 1, 3 }) do
    it(("a missing script: one message naming it, exit status 1, no hang (%d rank%s)"):format(np, np > 1 and "s" or ""), function()
      local r = H.run("", { np = np, script_arg = "no_such_script.lua", timeout = 30 })
      assert.are.equal(1, r.code, H.describe(r))
      assert.are.equal(1, H.count(r.stderr, "no_such_script.lua"), "the file is named exactly once\n" .. H.describe(r))
    end)

    it(("a script with a syntax error: one message with file:line, exit status 1, no hang (%d rank%s)"):format(np, np > 1 and "s" or ""), function()
      local src = "local x = 1\nlocal y = 2\nlocal z = = 3\nprint(x, y, z)\n"
      local r = H.run(src, { np = np, prelude = false, name = "broken.lua", timeout = 30 })
      assert.are.equal(1, r.code, H.describe(r))
      assert.are.equal(1, H.count(r.stderr, "broken.lua:3:"), "one message with broken.lua:3:\n" .. H.describe(r))
      assert.are.equal("", r.stdout, H.describe(r))
    end)
  end

  it("an error in a script on one rank: message with file:line and a traceback, exit status 1", function()
    local src = "local function f()\n  error('boom-serial')\nend\nf()\n"
    local r = H.run(src, { prelude = false, name = "err.lua", timeout = 30 })
    assert.are.equal(1, r.code, H.describe(r))
    assert.truthy(r.stderr:find("err.lua:2: boom-serial", 1, true), H.describe(r))
    assert.truthy(r.stderr:find("stack traceback", 1, true), H.describe(r))
  end)

  it("an uncaught error in the driver on the root while workers run ends every rank non-zero within seconds", function()
    local src = [[
local ev = evaluator.create(function(job) wait_s(job.parameters.s); return 1 end, "mpicomm")
if ev then
  ev:submit({ { s = 40 }, { s = 40 } })
  wait_s(0.5)
  local function drive() error("boom-in-the-driver") end
  drive()
end
]]
    local r = H.run(src, { np = 3, timeout = 30 })
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.truthy(r.stderr:find("boom-in-the-driver", 1, true), H.describe(r))
    assert.truthy(r.stderr:find("stack traceback", 1, true), H.describe(r))
    assert.truthy(r.stderr:find("script.lua:6:", 1, true), "the message has file:line\n" .. H.describe(r))
    assert.is_true(r.elapsed < 15, ("took %.1f s, the jobs were 40 s long\n"):format(r.elapsed) .. H.describe(r))
  end)

  it("an uncaught error on a worker rank outside any job ends every rank non-zero", function()
    local src = [[
if evaluator.mpi.rank() == 2 then error("boom-on-rank-2") end
wait_s(40)
]]
    local r = H.run(src, { np = 3, timeout = 30 })
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.truthy(r.stderr:find("boom-on-rank-2", 1, true), H.describe(r))
    assert.is_true(r.elapsed < 15, ("took %.1f s\n"):format(r.elapsed) .. H.describe(r))
  end)

  for _, np in ipairs({ 1, 3 }) do
    it(("sets `arg` and `...` as the lua interpreter does (%d rank%s)"):format(np, np > 1 and "s" or ""), function()
      local src = [[
local n = select("#", ...)
local dots = { ... }
local lower = 0
while arg[lower - 1] ~= nil do lower = lower - 1 end
report { rank = evaluator.mpi.rank(), a0 = arg[0], am1 = arg[-1], lower = lower, len = #arg,
  a1 = arg[1], a2 = arg[2], a3 = arg[3], n = n, d1 = dots[1], d2 = dots[2], d3 = dots[3] }
]]
      local r = H.ok(H.run(src, { np = np, args = { "one two", "", "-x" }, timeout = 30 }))
      local all = H.results(r)
      assert.are.equal(np, #all, H.describe(r))
      local seen = {}
      for _, t in ipairs(all) do
        seen[t.rank] = true
        assert.are.equal("script.lua", t.a0)
        assert.are.equal(H.BIN, t.am1)
        assert.are.equal(-1, t.lower)
        assert.are.equal(3, t.len)
        assert.are.same({ "one two", "", "-x" }, { t.a1, t.a2, t.a3 })
        assert.are.equal(3, t.n)
        assert.are.same({ "one two", "", "-x" }, { t.d1, t.d2, t.d3 })
      end
      for rank = 0, np - 1 do assert.is_true(seen[rank], "rank " .. rank .. " reported") end
    end)
  end

  it("an option after the script name is passed to the script, not taken by evaluator-lua", function()
    local t = H.eval('report { a1 = arg[1], a0 = arg[0] }', { args = { "--version" }, timeout = 30 })
    assert.are.same({ a1 = "--version", a0 = "script.lua" }, t)
  end)

  it("runs without mpirun as a one-rank job, with a serial search", function()
    local src = [[
local ev <close> = evaluator.create(function(job) return job.parameters.x * 2 end, "serial")
ev:submit({ { x = 1 }, { x = 2 }, { x = 3 } })
local done = ev:gather("ALL")
local sum = 0
for _, j in ipairs(done) do sum = sum + j.objective end
report { rank = evaluator.mpi.rank(), size = evaluator.mpi.size(), world = evaluator.mpi.COMM_WORLD:size(),
  n = #done, sum = sum }
]]
    local r = H.run(src, { mpi = false, timeout = 30 })
    assert.truthy(not r.cmd:find("mpirun", 1, true))
    assert.are.same({ rank = 0, size = 1, world = 1, n = 3, sum = 12 }, H.result(r))
  end)

  it("finds its compiled-in modules from any directory, whatever LUA_PATH says", function()
    local src = 'report { t = type(evaluator.create), f = evaluator.FAIL_RETURN_VALUE, c = type(cjson.encode) }'
    local t = H.eval(src, { env = { LUA_PATH = "/nonexistent/?.lua", LUA_PATH_5_4 = "/nonexistent/?.lua",
      LUA_CPATH = "/nonexistent/?.so", LUA_CPATH_5_4 = "/nonexistent/?.so" }, timeout = 30 })
    assert.are.same({ t = "function", f = "F", c = "function" }, t)
  end)

  it("a script may require its own modules from its directory", function()
    local t = H.eval('local m = require "mymod"; report { v = m.value }',
      { files = { ["mymod.lua"] = "return { value = 42 }" }, timeout = 30 })
    assert.are.same({ v = 42 }, t)
  end)

  it("standard libraries are all there on every rank", function()
    local src = [[
report { rank = evaluator.mpi.rank(), libs = { type(string.pack), type(table.move), type(math.tointeger),
  type(utf8.char), type(os.time), type(io.open), type(coroutine.wrap), type(debug.traceback), type(package.loaded) } }
]]
    local r = H.ok(H.run(src, { np = 2, timeout = 30 }))
    local all = H.results(r)
    assert.are.equal(2, #all, H.describe(r))
    for _, t in ipairs(all) do
      for i = 1, 8 do assert.are.equal("function", t.libs[i]) end
      assert.are.equal("table", t.libs[9])
    end
  end)
end)
