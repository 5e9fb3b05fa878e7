-- tests/helper.lua: runs Lua scripts under the INSTALLED evaluator-lua, with or without mpirun,
-- from a fresh temporary directory, and gives the specs what they need to look at the outcome.
--
--   local H = require "helper"            (the specs add tests/ to package.path)
--   local r = H.run(script_text, { np = 3, args = {...}, timeout = 60 })
--   r.code, r.stdout, r.stderr, r.dir, r.elapsed
--   H.result(r)        the one table the script reported with report{...} (see PRELUDE)
--   H.read_csv(path)   rows of a CSV file as read by python3's csv module (RFC 4180)
--
-- Every run is bounded by `timeout`: a run that does not end in time raises an error that says so,
-- which fails the test that made it.
local cjson = require "cjson"

local H = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.quote = shell_quote

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  p:close()
  return out
end
H.capture = capture

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return (capture("cd " .. shell_quote(path) .. " && pwd -P"):gsub("\n$", ""))
end

H.ROOT = absolute(here .. "/..")
H.BIN = os.getenv("EVL_BIN") or (H.ROOT .. "/build/test-prefix/bin/evaluator-lua")
H.TIMEOUT = tonumber(os.getenv("EVL_TEST_TIMEOUT")) or 60
H.MPIRUN = os.getenv("EVL_MPIRUN") or "mpirun"

--- The methods the contract tests run against: the method name, the number of ranks to run it
--- on, its class (evaluator[class] and to_json().type), its default num_workers on those ranks,
--- whether jobs run on other ranks than the root (remote), and whether jobs run in another Lua
--- state than the driver's, so that parameters and outputs are encoded (crosses), and what
--- metadata.rank holds (rank: "mpi", the MPI rank that ran the job; "index", the worker's index
--- 1..num_workers, as the README says of thread and process).
--- EVL_TEST_METHODS="serial,mpicomm" runs only those, for a quicker try.
H.KNOWN_METHODS = {
  -- serial crosses too: its run function gets its own copy of the job, as under every method.
  serial = { name = "serial", np = 1, class = "SerialEvaluator", workers = 1, remote = false, crosses = true, rank = "mpi" },
  mpicomm = { name = "mpicomm", np = 3, class = "MPICommEvaluator", workers = 2, remote = true, crosses = true, rank = "mpi" },
  thread = { name = "thread", np = 1, class = "ThreadPoolEvaluator", workers = 1, remote = false, crosses = true, rank = "index" },
  process = { name = "process", np = 1, class = "ProcessPoolEvaluator", workers = 1, remote = false, crosses = true, rank = "index" },
}
H.METHODS = { H.KNOWN_METHODS.serial, H.KNOWN_METHODS.mpicomm, H.KNOWN_METHODS.thread, H.KNOWN_METHODS.process }

if os.getenv("EVL_TEST_METHODS") then
  H.METHODS = {}
  for name in os.getenv("EVL_TEST_METHODS"):gmatch("[^,%s]+") do
    H.METHODS[#H.METHODS + 1] = assert(H.KNOWN_METHODS[name], "EVL_TEST_METHODS: unknown method " .. name)
  end
end

--- Prepended to every script unless run with { prelude = false }; it is ONE line, so a script's
--- line N is line N + 1 of the file. report(t) prints the script's result as one JSON line.
H.PRELUDE = 'local cjson = require "cjson"; local evaluator = require "evaluator"; '
  .. 'local function report(t) io.write("@@RESULT ", cjson.encode(t), "\\n"); io.flush() end; '
  .. 'local function wait_s(s) local t = evaluator.mpi.wtime() + s; while evaluator.mpi.wtime() < t do end end\n'

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
H.read_file = read_file

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end
H.write_file = write_file

function H.tmpdir()
  local d = capture("mktemp -d \"${TMPDIR:-/tmp}/evl-test.XXXXXX\""):gsub("\n$", "")
  assert(d ~= "", "mktemp -d failed")
  return d
end

function H.rmdir(d)
  if d and d:match("/evl%-test%.[%w]+$") then os.execute("chmod -R u+w " .. shell_quote(d) .. "; rm -rf " .. shell_quote(d)) end
end

local function now()
  local s = capture("date +%s.%N")
  return tonumber(s) or os.time()
end

--- The shell command (to run in the script's directory) that runs the script file `name` as the
--- options of H.run say: env, timeout, mpi, np, mpi_args, bin, bin_args, script_arg, args.
local function command_for(name, opts)
  local np = opts.np or 1
  local use_mpi = opts.mpi
  if use_mpi == nil then use_mpi = np > 1 end
  local parts = {}
  if opts.env then
    parts[1] = "env"
    for k, v in pairs(opts.env) do parts[#parts + 1] = shell_quote(k .. "=" .. v) end
  end
  local timeout = opts.timeout or H.TIMEOUT
  for _, a in ipairs({ "timeout", "-k", "5", tostring(timeout) }) do parts[#parts + 1] = a end
  if use_mpi then
    parts[#parts + 1] = H.MPIRUN
    parts[#parts + 1] = "--oversubscribe"
    for _, a in ipairs(opts.mpi_args or {}) do parts[#parts + 1] = shell_quote(a) end
    parts[#parts + 1] = "-np"
    parts[#parts + 1] = tostring(np)
  else
    assert(np == 1, "more than one rank needs mpirun")
  end
  parts[#parts + 1] = shell_quote(opts.bin or H.BIN)
  for _, a in ipairs(opts.bin_args or {}) do parts[#parts + 1] = shell_quote(a) end
  if opts.script_arg ~= false then parts[#parts + 1] = shell_quote(opts.script_arg or name) end
  for _, a in ipairs(opts.args or {}) do parts[#parts + 1] = shell_quote(a) end
  return table.concat(parts, " ")
end

--- Runs `script` (Lua source text) with opts.np ranks (default 1) and returns
--- { code, stdout, stderr, dir, elapsed, cmd }.
--- opts: np; args (list of script arguments); timeout (seconds); prelude (false: the text as is);
--- mpi (true: use mpirun even for one rank; false: never); mpi_args (list of extra mpirun
--- arguments); files (name -> content, written beside the script); name (of the script file);
--- dir (run there instead of a fresh directory); expect_timeout (do not fail on a timeout);
--- env (name -> value, set for the command); keep (leave the directory, r.dir, for the caller).
function H.run(script, opts)
  opts = opts or {}
  local dir = opts.dir or H.tmpdir()
  local name = opts.name or "script.lua"
  local text = opts.prelude == false and script or (H.PRELUDE .. script)
  write_file(dir .. "/" .. name, text)
  for fname, content in pairs(opts.files or {}) do write_file(dir .. "/" .. fname, content) end
  local timeout = opts.timeout or H.TIMEOUT
  local cmd = command_for(name, opts)
  local t0 = now()
  local sh = ("cd %s && %s </dev/null >.stdout 2>.stderr; echo $?"):format(shell_quote(dir), cmd)
  local code = tonumber((capture(sh):match("(%d+)%s*$")))
  local r = {
    code = code, dir = dir, cmd = cmd, elapsed = now() - t0,
    stdout = read_file(dir .. "/.stdout") or "", stderr = read_file(dir .. "/.stderr") or "",
  }
  os.remove(dir .. "/.stdout")
  os.remove(dir .. "/.stderr")
  r.timed_out = code == 124 or code == 137
  if r.timed_out and not opts.expect_timeout then
    error(("TIMED OUT after %s s (the binary hung): %s\n--- stdout:\n%s\n--- stderr:\n%s")
      :format(timeout, cmd, r.stdout, r.stderr), 2)
  end
  if not opts.dir and not opts.keep then
    -- keep nothing behind; a spec that needs the files asks for keep = true and calls H.rmdir
    H.rmdir(dir)
    r.dir = nil
  end
  return r
end

--- A readable account of a run, for assertion messages.
function H.describe(r)
  return ("command: %s\nexit code: %s\n--- stdout:\n%s\n--- stderr:\n%s"):format(r.cmd, tostring(r.code), r.stdout, r.stderr)
end

--- Asserts that the run exited 0.
function H.ok(r)
  assert(r.code == 0, "expected exit code 0\n" .. H.describe(r))
  return r
end

--- The tables reported (lines "@@RESULT {json}"), in output order.
function H.results(r)
  local out = {}
  for line in r.stdout:gmatch("[^\n]+") do
    local js = line:match("^@@RESULT (.*)$")
    if js then
      local ok, v = pcall(cjson.decode, js)
      assert(ok, "a result line is not JSON: " .. js .. "\n" .. H.describe(r))
      out[#out + 1] = v
    end
  end
  return out
end

--- The one table the script reported; fails unless the run exited 0 and exactly one was reported.
function H.result(r)
  H.ok(r)
  local all = H.results(r)
  assert(#all == 1, ("expected exactly one result line, got %d\n%s"):format(#all, H.describe(r)))
  return all[1]
end

--- Runs a script and returns its one result.
function H.eval(script, opts)
  return H.result(H.run(script, opts))
end

--- Runs `body` on the root of an evaluator of method m (an entry of H.METHODS) made with `run`
--- (Lua source of a function) and `kw` (Lua source of a table, or nil); `body` sees `ev` and calls
--- report{...}. Returns what it reported (H.eval).
function H.on_root(m, run, kw, body, opts)
  local src = ([[
local METHOD = %q
local ev <close> = evaluator.create(%s, METHOD, %s)
if ev then
%s
end
]]):format(m.name, run, kw or "nil", body)
  opts = opts or {}
  opts.np = opts.np or m.np
  return H.eval(src, opts)
end

--- Counts the non-overlapping occurrences of a plain string.
function H.count(haystack, needle)
  local n, i = 0, 1
  while true do
    local s, e = haystack:find(needle, i, true)
    if not s then return n end
    n, i = n + 1, e + 1
  end
end

--- The rows of a CSV file (header first) as python3's csv module reads them: a list of lists of
--- strings. Raises if python cannot parse the file.
function H.read_csv(path)
  local py = [[
import csv, json, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f, strict=True))
sys.stdout.write(json.dumps(rows))
]]
  local cmd = "python3 -c " .. shell_quote(py) .. " " .. shell_quote(path) .. " 2>&1"
  local out = capture(cmd)
  local ok, rows = pcall(cjson.decode, out)
  assert(ok and type(rows) == "table", "python3 csv could not read " .. path .. ":\n" .. out)
  return rows
end

--- The rows of a CSV file as records: list of { column = value } plus the header list.
function H.read_csv_records(path)
  local rows = H.read_csv(path)
  local header = rows[1] or {}
  local records = {}
  for i = 2, #rows do
    local rec = {}
    assert(#rows[i] == #header, ("row %d has %d fields, the header %d"):format(i, #rows[i], #header))
    for j, col in ipairs(header) do rec[col] = rows[i][j] end
    records[#records + 1] = rec
  end
  return records, header
end

--- Lua source for a literal string (any bytes), to build scripts with.
function H.lua_string(s)
  return ("%q"):format(s)
end

---------------------------------------------------------------------------------------------------
-- Added for the timeouts, exit, signals, methods and storage specs (nothing above changed).

--- Seconds since the epoch, with fractions (date +%s.%N).
H.now = now

--- Sleeps s seconds (the sleep command).
function H.sleep(s)
  os.execute("sleep " .. tostring(s))
end

--- A regular expression for pgrep -f that matches the plain string s, written so that it does not
--- match itself: every character but letters and digits goes in brackets, and so does the first.
function H.pgrep_pattern(s)
  local out = {}
  for i = 1, #s do
    local c = s:sub(i, i)
    if i == 1 or not c:match("[%w]") then
      if c == "]" or c == "\\" or c == "^" then c = "\\" .. c end
      out[#out + 1] = "[" .. c .. "]"
    else
      out[#out + 1] = c
    end
  end
  return table.concat(out)
end

--- The pids (numbers) of the processes whose command line contains the plain string s, as
--- `pgrep -f` sees them (zombies included when their name matches), and their `ps` lines.
function H.pgrep(s)
  local pat = H.pgrep_pattern(s)
  local pids, lines = {}, {}
  local out = capture("pgrep -f " .. shell_quote(pat) .. " 2>/dev/null")
  for pid in out:gmatch("%d+") do
    pids[#pids + 1] = tonumber(pid)
    lines[#lines + 1] = (capture("ps -o pid=,stat=,args= -p " .. pid .. " 2>/dev/null"):gsub("\n$", ""))
  end
  return pids, table.concat(lines, "\n")
end

--- Kills (SIGKILL), by pid, the processes whose command line contains the plain string s; for
--- clean-ups after a test, with a string only the test's own processes carry.
function H.kill_matching(s)
  for _, pid in ipairs((H.pgrep(s))) do os.execute("kill -9 " .. pid .. " 2>/dev/null") end
end

--- Polls until fn() is true or `timeout` seconds have passed; returns fn()'s last value.
function H.wait_until(fn, timeout, step)
  local t_end = now() + timeout
  while true do
    local v = fn()
    if v or now() >= t_end then return v end
    H.sleep(step or 0.1)
  end
end

--- Whether a file exists.
function H.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

--- Runs several scripts at once, each as H.run would (same options: np, timeout, name, files,
--- keep, env, args, mpi, mpi_args, bin, bin_args, script_arg, expect_timeout), and returns their
--- results in the same order once all have ended. For slow scripts that mostly wait, so that a
--- spec's wall time stays low.
function H.run_parallel(list)
  local runs, lines = {}, {}
  for i, item in ipairs(list) do
    local script, opts = item[1], item[2] or {}
    local dir = opts.dir or H.tmpdir()
    local name = opts.name or "script.lua"
    write_file(dir .. "/" .. name, opts.prelude == false and script or (H.PRELUDE .. script))
    for fname, content in pairs(opts.files or {}) do write_file(dir .. "/" .. fname, content) end
    local cmd = command_for(name, opts)
    runs[i] = { dir = dir, cmd = cmd, opts = opts }
    lines[#lines + 1] = ("(cd %s && s=$(date +%%s.%%N) && %s </dev/null >.stdout 2>.stderr; echo $? > .code; "
      .. "echo \"$s $(date +%%s.%%N)\" > .times) &"):format(shell_quote(dir), cmd)
  end
  lines[#lines + 1] = "wait"
  capture(table.concat(lines, "\n"))
  local out, hung = {}, nil
  for i, run in ipairs(runs) do
    local dir, opts = run.dir, run.opts
    local code = tonumber(((read_file(dir .. "/.code") or ""):match("(%d+)")))
    local t0, t1 = (read_file(dir .. "/.times") or ""):match("([%d.]+) ([%d.]+)")
    local r = {
      code = code, dir = dir, cmd = run.cmd, elapsed = (tonumber(t1) or 0) - (tonumber(t0) or 0),
      stdout = read_file(dir .. "/.stdout") or "", stderr = read_file(dir .. "/.stderr") or "",
    }
    for _, f in ipairs({ ".stdout", ".stderr", ".code", ".times" }) do os.remove(dir .. "/" .. f) end
    r.timed_out = code == 124 or code == 137
    if not opts.dir and not opts.keep then
      H.rmdir(dir)
      r.dir = nil
    end
    if r.timed_out and not opts.expect_timeout and not hung then
      hung = ("TIMED OUT after %s s (the binary hung): %s\n--- stdout:\n%s\n--- stderr:\n%s")
        :format(opts.timeout or H.TIMEOUT, run.cmd, r.stdout, r.stderr)
    end
    out[i] = r
  end
  if hung then error(hung, 2) end
  return out
end

return H
