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
    local r = H.run("", { script_arg = false, bin_args = { "--version" }, timeout = 20 })
    assert.are.equal(0, r.code, H.describe(r))
    assert.truthy(r.stdout:match("^evaluator%-lua %d+%.%d+[^\n]*\n$"), H.describe(r))
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

---------------------------------------------------------------------------------------------------
-- The lua interpreter's command line (issue 14): same meaning and order as lua5.4, under mpirun too.

-- Runs the installed binary with `args` (a list), `input` on its standard input, np ranks, in a
-- fresh directory holding `files`; returns { code, stdout, stderr }.
local function run_with_input(args, input, opts)
  opts = opts or {}
  local dir = H.tmpdir()
  for name, text in pairs(opts.files or {}) do H.write_file(dir .. "/" .. name, text) end
  H.write_file(dir .. "/.stdin", input or "")
  local parts = { "timeout", "-k", "5", tostring(opts.timeout or 60) }
  if (opts.np or 1) > 1 then
    for _, a in ipairs({ H.MPIRUN, "--oversubscribe", "-np", tostring(opts.np) }) do parts[#parts + 1] = a end
  end
  parts[#parts + 1] = H.quote(H.BIN)
  for _, a in ipairs(args) do parts[#parts + 1] = H.quote(a) end
  local env = ""
  for k, v in pairs(opts.env or {}) do env = env .. k .. "=" .. H.quote(v) .. " " end
  local cmd = ("cd %s && %s%s <.stdin >.stdout 2>.stderr; echo $?"):format(H.quote(dir), env ~= "" and "env " .. env or "", table.concat(parts, " "))
  local p = assert(io.popen(cmd, "r"))
  local code = tonumber(p:read("a"):match("(%d+)%s*$"))
  p:close()
  local r = { code = code, cmd = cmd, stdout = H.read_file(dir .. "/.stdout") or "", stderr = H.read_file(dir .. "/.stderr") or "" }
  H.rmdir(dir)
  return r
end

describe("evaluator-lua takes the lua interpreter's options", function()
  it("-v prints the Lua version line (as lua -v) and the evaluator-lua version, once, then runs the script", function()
    local r = H.ok(H.run('io.write("ran on ", evaluator.mpi.rank(), "\\n")', { np = 2, bin_args = { "-v" }, timeout = 30 }))
    assert.are.equal(1, H.count(r.stdout, "Lua 5.4"), H.describe(r))
    -- (anywhere: under mpirun the other rank's lines may come first)
    assert.truthy(r.stdout:find("Lua 5%.4%.%d+  Copyright %(C%) 1994%-%d+ Lua%.org, PUC%-Rio\nevaluator%-lua %d+%.%d+"), H.describe(r))
    assert.truthy(r.stdout:find("PUC%-Rio\nevaluator%-lua [^\n]*\n.*ran on 0"), "rank 0 prints the versions before its script runs\n" .. H.describe(r))
    assert.are.equal(2, H.count(r.stdout, "ran on "), H.describe(r))
    local alone = H.run("", { script_arg = false, bin_args = { "-v" }, timeout = 20 })
    assert.are.equal(0, alone.code, H.describe(alone))
    assert.truthy(alone.stdout:find("evaluator-lua ", 1, true), H.describe(alone))
  end)

  it("-e and -l run on every rank, in command-line order, before the script", function()
    local src = [[
report { rank = evaluator.mpi.rank(), x = x, g = g == string, m = mymod.value, order = order }
]]
    local r = H.ok(H.run(src, { np = 3, timeout = 60, files = { ["mymod.lua"] = "order = (order or '') .. 'l'; return { value = 7 }" },
      bin_args = { "-e", "x = 1; order = 'e'", "-lg=string", "-l", "mymod", "-e", "x = x + 1; order = order .. 'e'" } }))
    local all = H.results(r)
    assert.are.equal(3, #all, H.describe(r))
    for _, t in ipairs(all) do
      assert.are.same({ x = 2, g = true, m = 7, order = "ele" }, { x = t.x, g = t.g, m = t.m, order = t.order })
    end
  end)

  it("-l mod-suffix sets the global without the suffix (lua 5.4.6); -e alone runs without a script", function()
    local r = run_with_input({ "-l", "my-mod", "-e", "print(my.v, arg[0], arg[1])" }, "",
      { files = { ["my-mod.lua"] = "return { v = 'suffix-ok' }" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("suffix-ok\t" .. H.BIN .. "\t-l\n", r.stdout)
  end)

  it("a failing -e or -l: one message naming (command line) or the module, exit 1, every rank ends", function()
    local r = H.run("report {}", { np = 3, bin_args = { "-e", "error('bad-e-option')" }, timeout = 30 })
    assert.are.equal(1, r.code, H.describe(r))
    assert.are.equal(1, H.count(r.stderr, "(command line):1: bad-e-option"), H.describe(r))
    assert.are.equal("", r.stdout, "the script did not run\n" .. H.describe(r))
    local r2 = H.run("report {}", { np = 3, bin_args = { "-l", "no_such_module_xyz" }, timeout = 30 })
    assert.are.equal(1, r2.code, H.describe(r2))
    assert.are.equal(1, H.count(r2.stderr, "module 'no_such_module_xyz' not found"), H.describe(r2))
  end)

  it("-e, -l and -i need what lua needs: a bad option or a missing argument is an error naming it", function()
    for _, args in ipairs({ { "-e" }, { "-l" }, { "-e", "-v" }, { "-x" }, { "-ix" } }) do
      local r = run_with_input(args, "")
      assert.are.equal(1, r.code, table.concat(args, " ") .. "\n" .. r.stderr)
      assert.truthy(r.stderr:find(args[1], 1, true), r.stderr)
      assert.truthy(r.stderr:find("usage", 1, true), r.stderr)
    end
  end)

  it("-W turns warnings on (off without it), on every rank", function()
    local on = H.ok(H.run('warn("careful-", "now")', { np = 2, bin_args = { "-W" }, timeout = 30 }))
    assert.are.equal(2, H.count(on.stderr, "Lua warning: careful-now\n"), "each warning is one line\n" .. H.describe(on))
    local off = H.ok(H.run('warn("careful-", "now")', { np = 2, timeout = 30 }))
    assert.are.equal(0, H.count(off.stderr, "careful"), H.describe(off))
  end)

  -- A search read from standard input: jobs x = 1, 2 with the run function `body`; prints "sum N".
  local function stdin_search(first_line, body, method, kwargs)
    return ([[
local evaluator = require "evaluator"
%s
local ev <close> = evaluator.create(function(job) return %s end, %q, %s)
if ev then
  ev:submit({ { x = 1 }, { x = 2 } })
  local sum = 0
  for _, j in ipairs(ev:gather("ALL")) do sum = sum + j.objective end
  print("sum " .. sum)
end
]]):format(first_line, body, method, kwargs)
  end

  it("- reads the script from standard input on rank 0 and runs it on every rank, with its arguments", function()
    local src = stdin_search([[io.write(("rank %d of %d: arg[0]=%s ...=%s\n"):format(evaluator.mpi.rank(), evaluator.mpi.size(), arg[0], table.concat({ ... }, ",")))]],
      "job.parameters.x * 3", "mpicomm", "nil")
    local r = run_with_input({ "-", "a", "b c" }, src, { np = 3 })
    assert.are.equal(0, r.code, r.stderr)
    for rank = 0, 2 do
      assert.truthy(r.stdout:find(("rank %d of 3: arg[0]=- ...=a,b c"):format(rank), 1, true), r.stdout)
    end
    assert.truthy(r.stdout:find("sum 9", 1, true), r.stdout)
  end)

  it("a script from standard input reaches thread workers too (they re-run it)", function()
    local r = run_with_input({ "-" }, stdin_search("", "job.parameters.x + 1", "thread", "{ num_workers = 2 }"))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("sum 5\n", r.stdout)
  end)

  it("-- ends the options: the next argument is the script, even one named like an option", function()
    local r = run_with_input({ "--", "-v", "x" }, "", { files = { ["-v"] = "print('script named -v', ...)" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("script named -v\tx\n", r.stdout)
  end)

  it("-E ignores LUA_INIT and LUA_PATH; without it LUA_INIT runs first and LUA_PATH is used", function()
    local dir = H.tmpdir()
    H.write_file(dir .. "/pathmod.lua", "return 'from LUA_PATH'")
    local env = { LUA_INIT = "init_ran = true", LUA_PATH = dir .. "/?.lua" }
    local script = "print(init_ran, pcall(require, 'pathmod'))"
    local with = run_with_input({ "-e", script }, "", { env = env })
    local without = run_with_input({ "-E", "-e", script }, "", { env = env })
    H.rmdir(dir)
    assert.are.equal(0, with.code, with.stderr)
    assert.truthy(with.stdout:find("^true\ttrue\tfrom LUA_PATH"), with.stdout)
    assert.are.equal(0, without.code, without.stderr)
    assert.truthy(without.stdout:find("^nil\tfalse\tmodule 'pathmod' not found"), without.stdout)
  end)

  it("-i gives a prompt on rank 0 after the script, with its globals, and an open mpicomm evaluator still works", function()
    local src = [[
local evaluator = require "evaluator"
ev = evaluator.create(function(job) return job.parameters.x * 10 end, "mpicomm")
answer = 41
]]
    local input = "answer + 1\nprint('rank', require('evaluator').mpi.rank())\nev:submit({ { x = 4 } })\n"
      .. "for _, j in ipairs(ev:gather('ALL')) do\nprint('objective', j.objective)\nend\nerror('typed-error')\nreturn 'still', 'here'\n"
    local r = run_with_input({ "-i", "search.lua" }, input, { np = 3, files = { ["search.lua"] = src } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(1, H.count(r.stdout, "Lua 5.4"), "-i implies -v, printed once\n" .. r.stdout)
    assert.truthy(r.stdout:find("> 42\n", 1, true), r.stdout)
    assert.truthy(r.stdout:find("rank\t0\n", 1, true), r.stdout)
    assert.are.equal(1, H.count(r.stdout, "rank\t"), "one prompt, on rank 0\n" .. r.stdout)
    assert.truthy(r.stdout:find(">> >> objective\t40\n", 1, true), "a statement over several lines\n" .. r.stdout)
    assert.truthy(r.stderr:find("stdin:1: typed-error", 1, true), "an error is printed and the prompt goes on\n" .. r.stderr)
    assert.truthy(r.stdout:find("still\there\n", 1, true), r.stdout)
  end)

  it("no script with a terminal on standard input: the versions and a prompt, as lua (script(1) gives the terminal)", function()
    local p = assert(io.popen("printf 'print(6*7)\\n' | timeout -k 5 30 script -qec " .. H.quote(H.quote(H.BIN)) .. " /dev/null 2>&1"))
    local out = p:read("a"):gsub("\r", "")
    p:close()
    assert.truthy(out:find("Lua 5.4", 1, true), out)
    assert.truthy(out:find("> 42\n", 1, true), out)
  end)

  it("no script and no -e/-v/-i with a non-terminal standard input is an error that says to use -", function()
    local r = run_with_input({}, "print('not run')")
    assert.are.equal(1, r.code, r.stderr)
    assert.truthy(r.stderr:find("no script given (use - to read it from standard input)", 1, true), r.stderr)
    assert.are.equal("", r.stdout)
  end)
end)

---------------------------------------------------------------------------------------------------
-- Messages a person can read (issue 14, item 3).

describe("an uncaught error is printed once, from the rank where it happened", function()
  it("an error at the script's top level on every rank: one message, naming rank 0, exit 1", function()
    local src = "local function setup()\n  local cfg = nil\n  return cfg.depth\nend\nsetup()\n"
    local r = H.run(src, { np = 3, prelude = false, name = "top.lua", timeout = 30 })
    assert.are.equal(1, r.code, H.describe(r))
    assert.are.equal(1, H.count(r.stderr, "attempt to index a nil value (local 'cfg')"), H.describe(r))
    assert.truthy(r.stderr:find("evaluator-lua: rank 0: top.lua:3: attempt", 1, true), H.describe(r))
    assert.truthy(r.stderr:find("top.lua:3: in local 'setup'\n\ttop.lua:5: in main chunk", 1, true), H.describe(r))
  end)

  it("an error on one worker rank only names that rank", function()
    local r = H.run('if evaluator.mpi.rank() == 2 then error("only-on-two") end\nwait_s(20)\n', { np = 3, timeout = 30 })
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.are.equal(1, H.count(r.stderr, "only-on-two"), H.describe(r))
    assert.truthy(r.stderr:find("evaluator-lua: rank 2: script.lua:2: only-on-two", 1, true), H.describe(r))
  end)

  it("the traceback shows the user's frames and leaves the evaluator module's out", function()
    local src = [[
local cb = {}
function cb:on_done(job) error("callback-failed") end
local ev <close> = evaluator.create(function() return 1 end, "serial", { callbacks = { cb } })
local function drive() ev:submit({ { x = 1 } }); ev:gather("ALL") end
drive()
]]
    local r = H.run(src, { timeout = 30 })
    assert.are.equal(1, r.code, H.describe(r))
    assert.truthy(r.stderr:find("script.lua:3: callback-failed", 1, true), H.describe(r))
    assert.truthy(r.stderr:find("script.lua:5: in local 'drive'", 1, true), H.describe(r))
    assert.truthy(r.stderr:find("script.lua:6: in main chunk", 1, true), H.describe(r))
    assert.is_nil(r.stderr:find("lua/evaluator/", 1, true), "no module frame\n" .. H.describe(r))
    assert.is_nil(r.stderr:find("[C]: in ?", 1, true), "not the runtime's own call\n" .. H.describe(r))
  end)

  it("a worker rank that indexes the nil evaluator gets a hint about `if ev then`, once", function()
    local src = [[
local ev <close> = evaluator.create(function(job) return job.parameters.x end, "mpicomm")
ev:submit({ { x = 1 } })
ev:gather("ALL")
]]
    local r = H.run(src, { np = 3, timeout = 30 })
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.are.equal(1, H.count(r.stderr, "attempt to index a nil value (local 'ev')"), H.describe(r))
    assert.are.equal(1, H.count(r.stderr, "if ev then"), H.describe(r))
    assert.truthy(r.stderr:find("evaluator-lua: rank 1: script.lua:3: attempt to index a nil value (local 'ev')\n(hint:", 1, true), H.describe(r))
  end)

  it("an error on the root names no hint (the evaluator is not nil there)", function()
    local r = H.run('local t = nil\nlocal ev <close> = evaluator.create(function() return 1 end, "mpicomm")\nif ev then print(t.x) end\n',
      { np = 2, timeout = 30 })
    assert.are_not.equal(0, r.code, H.describe(r))
    assert.is_nil(r.stderr:find("hint", 1, true), H.describe(r))
    assert.truthy(r.stderr:find("rank 0: script.lua:4: attempt to index a nil value (local 't')", 1, true), H.describe(r))
  end)
end)

---------------------------------------------------------------------------------------------------
-- Lua modules in run functions (issue 14, item 4): Debian's lpeg and lfs under all four methods.

describe("Debian's Lua C modules load in run functions", function()
  for _, m in ipairs(H.METHODS) do
    it(("lpeg and lfs in a run function (%s), and a -l global reaches the workers"):format(m.name), function()
      local src = ([[
local function run(job)
  local lpeg, lfs = require "lpeg", require "lfs"
  local number = lpeg.C(lpeg.R("09") ^ 1) / tonumber
  return { objective = number:match(job.parameters.s) + 1,
    metadata = { dir = lfs.attributes(job.parameters.d, "mode"), global = type(G_lpeg) } }
end
local ev <close> = evaluator.create(run, %q)
if ev then
  ev:submit({ { s = "41", d = "." }, { s = "9", d = "/" } })
  local out = {}
  for _, j in ipairs(ev:gather("ALL")) do out[j.parameters.s] = { j.objective, j.metadata.dir, j.metadata.global, j.metadata.error } end
  report(out)
end
]]):format(m.name)
      local t = H.eval(src, { np = m.np, bin_args = { "-l", "G_lpeg=lpeg" }, timeout = 60 })
      assert.are.same({ ["41"] = { 42, "directory", "table" }, ["9"] = { 10, "directory", "table" } }, t)
    end)
  end
end)

describe("LUA_PATH and LUA_CPATH apply on every rank and in every worker", function()
  for _, m in ipairs(H.METHODS) do
    it(("a module found only through LUA_PATH loads in a run function (%s)"):format(m.name), function()
      local moddir = H.tmpdir()
      H.write_file(moddir .. "/evl_pathonly.lua", "return { twice = function(x) return 2 * x end }")
      local src = ([[
local ev <close> = evaluator.create(function(job) return require("evl_pathonly").twice(job.parameters.x) end, %q)
if ev then
  ev:submit({ { x = 1 }, { x = 2 }, { x = 3 } })
  local out = {}
  for _, j in ipairs(ev:gather("ALL")) do out[#out + 1] = j.objective end
  table.sort(out, function(a, b) return tostring(a) < tostring(b) end)
  report(out)
end
]]):format(m.name)
      local ok, t = pcall(H.eval, src, { np = m.np, env = { LUA_PATH = moddir .. "/?.lua;;" }, timeout = 60 })
      H.rmdir(moddir)
      assert(ok, t)
      assert.are.same({ 2, 4, 6 }, t)
    end)
  end
end)

---------------------------------------------------------------------------------------------------
-- The installed documentation (issue 14, item 2).

describe("make install puts the documentation where --help says", function()
  it("installs the man page, API.md and README.md under PREFIX/share; man -l renders the page; --help names them", function()
    local prefix = H.tmpdir()
    local p = assert(io.popen(("cd %s && make --no-print-directory install PREFIX=%s 2>&1; echo \"@@rc $?\""):format(H.quote(H.ROOT), H.quote(prefix))))
    local out = p:read("a")
    p:close()
    assert.truthy(out:find("@@rc 0", 1, true), out)
    for _, f in ipairs({ "/share/man/man1/evaluator-lua.1", "/share/doc/evaluator-lua/API.md", "/share/doc/evaluator-lua/README.md", "/bin/evaluator-lua" }) do
      assert.is_true(H.exists(prefix .. f), prefix .. f .. " is installed")
    end
    assert.are.equal(H.read_file(H.ROOT .. "/docs/API.md"), H.read_file(prefix .. "/share/doc/evaluator-lua/API.md"))
    local m = assert(io.popen("MANWIDTH=100 man -l " .. H.quote(prefix .. "/share/man/man1/evaluator-lua.1") .. " 2>&1"))
    local page = m:read("a")
    m:close()
    for _, want in ipairs({ "EVALUATOR-LUA(1)", "SYNOPSIS", "OPTIONS", "ENVIRONMENT", "EXIT STATUS", "EXAMPLES", "-l g=mod", "LUA_CPATH" }) do
      assert.truthy(page:find(want, 1, true), "the rendered page has " .. want .. "\n" .. page)
    end
    local r = H.run("", { script_arg = false, bin = prefix .. "/bin/evaluator-lua", bin_args = { "--help" }, timeout = 20 })
    assert.are.equal(0, r.code, H.describe(r))
    assert.truthy(r.stdout:find(prefix .. "/share/doc/evaluator-lua/API.md", 1, true), H.describe(r))
    assert.truthy(r.stdout:find("man evaluator-lua", 1, true), H.describe(r))
    os.execute("rm -rf " .. H.quote(prefix))
  end)
end)
