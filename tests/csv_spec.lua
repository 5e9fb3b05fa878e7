-- csv_spec.lua: dump_jobs_done_to_csv: DeepHyper's column layout, RFC 4180 quoting (read back with
-- python3's csv module), number formats, JSON for nested values, header widening, appending,
-- the table form, dump_evals, and errors that keep jobs_done.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"
local cjson = require "cjson"

-- Runs a script on the root of an evaluator of method m (default serial) in a kept directory;
-- returns the result and the directory (the caller removes it).
local function run_csv(body, m, run)
  m = m or H.METHODS[1]
  local r = H.run(([[
local ev <close> = evaluator.create(%s, %q)
if ev then
%s
end
]]):format(run or "function(job) return job.parameters.obj end", m.name, body), { np = m.np, keep = true })
  local ok, t = pcall(H.result, r)
  if not ok then H.rmdir(r.dir); error(t, 0) end
  return t, r.dir
end

local function index_of(list, v)
  for i, x in ipairs(list) do if x == v then return i end end
end

-- The fewest significant digits %.Ng needs to give back v.
local function shortest_digits(v)
  for p = 1, 17 do
    if tonumber(("%." .. p .. "g"):format(v)) == v then return p end
  end
  return 17
end

local function mantissa_digits(cell)
  local m = cell:gsub("^[-+]", ""):gsub("[eE].*$", ""):gsub("%.", ""):gsub("^0+", "")
  m = m:gsub("0+$", "")
  return math.max(#m, 1)
end

-- Inside a describe: csv(body, m, run) runs run_csv and keep(dir) keeps a directory, both removed
-- after each test.
local function kept_runs()
  local dirs = {}
  after_each(function()
    for _, d in ipairs(dirs) do H.rmdir(d) end
    dirs = {}
  end)
  local function keep(dir)
    dirs[#dirs + 1] = dir
    return dir
  end
  local function csv(body, m, run)
    local t, dir = run_csv(body, m, run)
    return t, keep(dir)
  end
  return csv, keep
end

describe("dump_jobs_done_to_csv", function()
  local csv = kept_runs()

  for _, m in ipairs(H.METHODS) do
    it(("writes DeepHyper's columns p: (sorted), objective, job_id, m: (%s)"):format(m.name), function()
      local t, dir = csv([[
ev:submit({ { zeta = 1, alpha = "a", mid = 2.5, obj = 1 }, { zeta = 2, alpha = "b", mid = 3.5, obj = 2 } })
ev:gather("ALL")
local n = #ev.jobs_done
ev:dump_jobs_done_to_csv(".", "results.csv")
report { before = n, after = #ev.jobs_done }
]], m, [[function(job)
  return { objective = job.parameters.obj, metadata = { note = "n" .. job.parameters.obj, _private = 1, ran_on = evaluator.mpi.rank() } }
end]])
      assert.are.same({ before = 2, after = 0 }, t)
      local recs, header = H.read_csv_records(dir .. "/results.csv")
      assert.are.same({ "p:alpha", "p:mid", "p:obj", "p:zeta", "objective", "job_id" }, { table.unpack(header, 1, 6) })
      local mcols = {}
      for i = 7, #header do
        assert.truthy(header[i]:match("^m:"), "after job_id only m: columns: " .. header[i])
        mcols[#mcols + 1] = header[i]
      end
      table.sort(mcols)
      assert.are.same({ "m:note", "m:ran_on", "m:rank", "m:timestamp_end", "m:timestamp_gather", "m:timestamp_start",
        "m:timestamp_submit" }, mcols)
      assert.are.equal(2, #recs)
      table.sort(recs, function(a, b) return a.job_id < b.job_id end)
      for i, rec in ipairs(recs) do
        assert.are.equal(tostring(i - 1), rec.job_id)
        assert.are.equal(tostring(i), rec.objective)
        assert.are.equal(tostring(i), rec["p:zeta"])
        assert.are.equal("n" .. i, rec["m:note"])
        if m.rank == "mpi" then assert.are.equal(rec["m:ran_on"], rec["m:rank"]) end
        local rank = math.tointeger(tonumber(rec["m:rank"]))
        assert.truthy(rank, "m:rank is an integer: " .. rec["m:rank"])
        if m.rank == "index" then assert.is_true(rank >= 1 and rank <= m.workers, rec["m:rank"]) end
        if m.remote then assert.are_not.equal("0", rec["m:rank"]) end
        local ts = {}
        for k, key in ipairs({ "submit", "start", "end", "gather" }) do ts[k] = tonumber(rec["m:timestamp_" .. key]) end
        assert.is_true(ts[1] <= ts[2] and ts[2] <= ts[3] and ts[3] <= ts[4], table.concat(ts, " "))
      end
    end)
  end

  it("writes objective_0..k-1 for k objectives, and no objective column", function()
    local _, dir = csv([[
ev:submit({ { x = 1 }, { x = 2 } })
ev:gather("ALL")
ev:dump_jobs_done_to_csv()
report {}
]], nil, "function(job) local x = job.parameters.x; return { x, -x, x * 0.5 } end")
    local recs, header = H.read_csv_records(dir .. "/results.csv")
    assert.are.same({ "p:x", "objective_0", "objective_1", "objective_2", "job_id" }, { table.unpack(header, 1, 5) })
    assert.is_nil(index_of(header, "objective"))
    table.sort(recs, function(a, b) return a.job_id < b.job_id end)
    assert.are.same({ "1", "-1", "0.5" }, { recs[1].objective_0, recs[1].objective_1, recs[1].objective_2 })
    assert.are.same({ "2", "-2", "1.0" }, { recs[2].objective_0, recs[2].objective_1, recs[2].objective_2 })
  end)

  it("quotes commas, quotes, newlines and spaces so that an RFC 4180 reader reads them back exactly", function()
    local strings = { 'a,b', 'say "hi"', 'line1\nline2', 'cr\r\nlf', '  padded  ', '"', ',', '', 'caf\u{e9} \u{1F600}',
      'semi;colon', "tab\there", '\n' }
    local lits = {}
    for i, s in ipairs(strings) do lits[i] = H.lua_string(s) end
    local _, dir = csv(([[
local S = { %s }
local list = {}
for i, s in ipairs(S) do list[i] = { s = s, ["we,ird \"name\"\n"] = i, obj = i } end
ev:submit(list)
ev:gather("ALL")
ev:dump_jobs_done_to_csv(".", "q.csv")
report {}
]]):format(table.concat(lits, ", ")), nil, [[function(job)
  return { objective = job.parameters.obj, metadata = { echo = job.parameters.s } }
end]])
    local recs, header = H.read_csv_records(dir .. "/q.csv")
    assert.truthy(index_of(header, 'p:we,ird "name"\n'), "a column name with a comma, quotes and a newline")
    assert.are.equal(#strings, #recs)
    for _, rec in ipairs(recs) do
      local i = tonumber(rec.objective)
      assert.are.equal(strings[i], rec["p:s"], "parameter " .. i)
      assert.are.equal(strings[i], rec["m:echo"], "metadata " .. i)
      assert.are.equal(tostring(i), rec['p:we,ird "name"\n'])
    end
  end)

  it("writes nested values as JSON text", function()
    local _, dir = csv([[
ev:submit({ { obj = 1, list = { 1, 2.5, "x", true }, dict = { a = 1, b = { c = "d,e" } }, empty = {} } })
ev:gather("ALL")
ev:dump_jobs_done_to_csv()
report {}
]])
    local rec = H.read_csv_records(dir .. "/results.csv")[1]
    assert.are.same({ 1, 2.5, "x", true }, cjson.decode(rec["p:list"]))
    assert.are.same({ a = 1, b = { c = "d,e" } }, cjson.decode(rec["p:dict"]))
    assert.are.equal("table", type(cjson.decode(rec["p:empty"])))
  end)

  it("keeps each parameter in its own column when a value equals another parameter's number key", function()
    -- A cache of column names once keyed by the value instead of the key sent "seven" to p:n.
    local _, dir = csv([[
ev:submit({ { n = 7, [7] = "seven", obj = 1 }, { n = 7, [7] = "seven", obj = 2 }, { n = 8, [7] = "sept", obj = 3 } })
ev:gather("ALL")
ev:dump_jobs_done_to_csv()
report {}
]])
    local recs = H.read_csv_records(dir .. "/results.csv")
    assert.are.equal(3, #recs)
    table.sort(recs, function(a, b) return a.objective < b.objective end)
    for i, want in ipairs({ { "7", "seven" }, { "7", "seven" }, { "8", "sept" } }) do
      assert.are.equal(want[1], recs[i]["p:n"], "row " .. i)
      assert.are.equal(want[2], recs[i]["p:7"], "row " .. i)
    end
  end)

  it("writes jobs whose fields are built on access (a metatable), whatever the collector frees meanwhile", function()
    -- Cells point into the jobs' strings: fields made on access must stay alive until the file is written.
    local _, dir = csv([[
local long = ("y"):rep(60)
local jobs = {}
for i = 1, 3000 do
  jobs[i] = setmetatable({ id = "s." .. i, objective = i }, { __index = function(_, k)
    if k == "parameters" then return { x = ("value %d "):format(i) .. long, [("k"):rep(50)] = i * 0.5 } end
    if k == "metadata" then return { note = ("n%d "):format(i) .. long } end
  end })
end
ev.jobs_done = jobs
collectgarbage("incremental", 1, 1000) -- a full cycle at every step: whatever is unreachable is freed at once
ev:dump_jobs_done_to_csv()
report {}
]])
    local recs = H.read_csv_records(dir .. "/results.csv")
    assert.are.equal(3000, #recs)
    local long = ("y"):rep(60)
    for i, rec in ipairs(recs) do
      assert.are.equal(("value %d "):format(i) .. long, rec["p:x"], "row " .. i)
      assert.are.equal(tostring(i * 0.5), rec["p:" .. ("k"):rep(50)], "row " .. i)
      assert.are.equal(("n%d "):format(i) .. long, rec["m:note"], "row " .. i)
      assert.are.equal(tostring(i), rec.job_id, "row " .. i)
    end
  end)

  it("writes integers as integers and floats in the shortest form that reads back to the same float", function()
    local _, dir = csv([[
local P = { i = 3, ineg = -7, imax = math.maxinteger, imin = math.mininteger, f01 = 0.1, third = 1 / 3,
  tiny = 1e-310, two = 2.0, big = 1e300, neg = -2.5e-5, ftwo53 = 2.0 ^ 53, negzero = -0.0, obj = 0.1 }
ev:submit({ P })
ev:gather("ALL")
ev:dump_jobs_done_to_csv()
report {}
]])
    local rec = H.read_csv_records(dir .. "/results.csv")[1]
    assert.are.equal("3", rec["p:i"])
    assert.are.equal("-7", rec["p:ineg"])
    assert.are.equal(tostring(math.maxinteger), rec["p:imax"])
    assert.are.equal(tostring(math.mininteger), rec["p:imin"])
    assert.are.equal("0.1", rec["p:f01"])
    assert.are.equal("0.1", rec.objective)
    local nz = tonumber(rec["p:negzero"])
    assert.is_true(math.type(nz) == "float" and nz == 0 and 1 / nz < 0, "-0.0 reads back as -0.0: " .. rec["p:negzero"])
    for _, k in ipairs({ "f01", "third", "tiny", "two", "big", "neg", "ftwo53" }) do
      local cell = rec["p:" .. k]
      local v = tonumber(cell)
      assert.are.equal("float", math.type(v), k .. " reads back as a float: " .. cell)
      local want = ({ f01 = 0.1, third = 1 / 3, tiny = 1e-310, two = 2.0, big = 1e300, neg = -2.5e-5, ftwo53 = 2.0 ^ 53 })[k]
      assert.are.equal(want, v, k .. ": " .. cell)
      assert.are.equal(shortest_digits(want), mantissa_digits(cell), k .. " is not in its shortest form: " .. cell)
    end
  end)

  it("widens the header when a later dump brings a new parameter or metadata key; earlier rows keep their values", function()
    local _, dir = csv([[
ev:submit({ { x = 1, obj = 1 }, { x = 2, obj = 2 } })
ev:gather("ALL")
ev:dump_jobs_done_to_csv(".", "w.csv")
ev:submit({ { x = 3, aa_new = "late", obj = 3 } })
ev:gather("ALL")
ev:dump_jobs_done_to_csv(".", "w.csv")
ev:submit({ { x = 4, obj = 4 } })
ev:gather("ALL")
ev:dump_jobs_done_to_csv(".", "w.csv")
report {}
]], nil, [[function(job)
  local md = job.parameters.obj == 3 and { extra_key = "e3" } or {}
  return { objective = job.parameters.obj, metadata = md }
end]])
    local rows = H.read_csv(dir .. "/w.csv")
    local header = rows[1]
    assert.are.same({ "p:aa_new", "p:obj", "p:x", "objective", "job_id" }, { table.unpack(header, 1, 5) })
    assert.truthy(index_of(header, "m:extra_key"), "m:extra_key in the header")
    local n_headers = 0
    for _, row in ipairs(rows) do if row[1] == "p:aa_new" then n_headers = n_headers + 1 end end
    assert.are.equal(1, n_headers, "one header line")
    local recs = H.read_csv_records(dir .. "/w.csv")
    assert.are.equal(4, #recs)
    local by = {}
    for _, rec in ipairs(recs) do by[rec.job_id] = rec end
    for i = 1, 4 do
      local rec = by[tostring(i - 1)]
      assert.is_table(rec, "job " .. (i - 1))
      assert.are.same({ tostring(i), tostring(i) }, { rec["p:x"], rec.objective })
      assert.are.equal(i == 3 and "late" or "", rec["p:aa_new"])
      assert.are.equal(i == 3 and "e3" or "", rec["m:extra_key"])
      assert.truthy(tonumber(rec["m:timestamp_end"]), "job " .. (i - 1) .. " kept its timestamp")
    end
  end)

  it("appends several dumps under one header, in order", function()
    local _, dir = csv([[
for round = 0, 2 do
  ev:submit({ { x = round * 2, obj = round }, { x = round * 2 + 1, obj = round } })
  ev:gather("ALL")
  ev:dump_jobs_done_to_csv(".", "a.csv")
end
report {}
]])
    local rows = H.read_csv(dir .. "/a.csv")
    assert.are.equal(7, #rows, "one header and six rows")
    local recs = H.read_csv_records(dir .. "/a.csv")
    local ids = {}
    for i, rec in ipairs(recs) do ids[i] = tonumber(rec.job_id) end
    assert.are.same({ 0, 1, 2, 3, 4, 5 }, ids)
  end)

  it("accepts one table {log_dir=, filename=, flush=}, defaults to ./results.csv, and has dump_evals", function()
    local t, dir = csv([[
os.execute("mkdir -p logs")
ev:submit({ { obj = 1 } }); ev:gather("ALL")
ev:dump_jobs_done_to_csv { log_dir = "logs", filename = "table.csv", flush = true }
ev:submit({ { obj = 2 } }); ev:gather("ALL")
ev:dump_jobs_done_to_csv()
ev:submit({ { obj = 3 } }); ev:gather("ALL")
ev:dump_evals("logs", "evals.csv")
ev:submit({ { obj = 4 } }); ev:gather("ALL")
ev:dump_evals { log_dir = "logs/", filename = "evals.csv" }
report { left = #ev.jobs_done }
]])
    assert.are.same({ left = 0 }, t)
    local function objs(path)
      local out = {}
      for i, rec in ipairs(H.read_csv_records(path)) do out[i] = rec.objective end
      return out
    end
    assert.are.same({ "1" }, objs(dir .. "/logs/table.csv"))
    assert.are.same({ "2" }, objs(dir .. "/results.csv"))
    assert.are.same({ "3", "4" }, objs(dir .. "/logs/evals.csv"))
  end)

  it("raises an error for a missing or non-writable directory and keeps jobs_done", function()
    local t, dir = csv([[
ev:submit({ { obj = 1 }, { obj = 2 } })
ev:gather("ALL")
local io_ = io.open("plainfile", "w"); io_:write("x"); io_:close()
local unwritable = "/proc"
local p = io.popen("id -u"); local uid = p:read("l"); p:close()
if uid ~= "0" then os.execute("mkdir ro && chmod 555 ro"); unwritable = "ro" end
local res = {}
for _, d in ipairs({ "no/such/dir", "plainfile", unwritable }) do
  local ok, err = pcall(ev.dump_jobs_done_to_csv, ev, d, "r.csv")
  res[#res + 1] = { dir = d, ok = ok, err = tostring(err), kept = #ev.jobs_done }
end
ev:dump_jobs_done_to_csv(".", "r.csv")
report { res = res, left = #ev.jobs_done }
]])
    for _, c in ipairs(t.res) do
      assert.is_false(c.ok, c.dir .. ": no error")
      assert.truthy(c.err:find(c.dir, 1, true) or c.err:find("r.csv", 1, true), c.dir .. ": the error names the path: " .. c.err)
      assert.are.equal(2, c.kept, c.dir .. ": jobs_done was not kept")
    end
    assert.are.equal(0, t.left)
    assert.are.equal(2, #H.read_csv_records(dir .. "/r.csv"))
  end)
end)

-- Hostile files and concurrent writers (issue 10): what a dump must never do to a shared directory.
describe("dump_jobs_done_to_csv in a shared directory", function()
  local csv, keep = kept_runs()
  local function mode_of(path)
    local p = io.popen("stat -c %a " .. H.quote(path))
    local m = p:read("l")
    p:close()
    return m
  end

  it("never follows a link planted at the temporary file's name, and keeps the victim's content and mode", function()
    -- The old rewrite opened "<csv>.tmp.<pid>" with O_TRUNC: a link planted there for every pid
    -- near ours made root truncate and take over the file it pointed at.
    local t, dir = csv([[
local f = io.open("victim", "w"); f:write("secret\n"); f:close()
os.execute("chmod 600 victim")
local pid = tonumber(io.open("/proc/self/stat"):read("a"):match("^(%d+)"))
for p = pid - 50, pid + 50 do os.execute(("ln -s victim results.csv.tmp.%d"):format(p)) end
ev:submit({ { x = 1, obj = 1 } }); ev:gather("ALL"); ev:dump_jobs_done_to_csv(".", "results.csv")
ev:submit({ { x = 2, wider = "w", obj = 2 } }); ev:gather("ALL"); ev:dump_jobs_done_to_csv(".", "results.csv")
report { pid = pid }
]])
    assert.are.equal("secret\n", H.read_file(dir .. "/victim"))
    assert.are.equal("600", mode_of(dir .. "/victim"))
    local recs, header = H.read_csv_records(dir .. "/results.csv")
    assert.are.equal(2, #recs)
    assert.truthy(index_of(header, "p:wider"))
    assert.are.equal("w", recs[2]["p:wider"])
    assert.truthy(t.pid)
  end)

  it("keeps an existing CSV's mode through a rewrite, and a new one gets the umask's", function()
    local _, dir = csv([[
ev:submit({ { x = 1, obj = 1 } }); ev:gather("ALL"); ev:dump_jobs_done_to_csv(".", "kept.csv")
os.execute("chmod 640 kept.csv")
ev:submit({ { x = 2, wider = 1, obj = 2 } }); ev:gather("ALL"); ev:dump_jobs_done_to_csv(".", "kept.csv")
ev:submit({ { x = 3, obj = 3 } }); ev:gather("ALL"); ev:dump_jobs_done_to_csv(".", "new.csv")
report {}
]])
    assert.are.equal("640", mode_of(dir .. "/kept.csv"))
    assert.are.equal(2, #H.read_csv_records(dir .. "/kept.csv"))
    local p = io.popen("umask")
    local mask = tonumber(p:read("l"), 8)
    p:close()
    assert.are.equal(("%o"):format(tonumber("666", 8) & ~mask), mode_of(dir .. "/new.csv"))
  end)

  it("refuses a CSV name that is a symbolic link, naming it, and keeps jobs_done", function()
    local t, dir = csv([[
local f = io.open("victim", "w"); f:write("secret\n"); f:close()
os.execute("ln -s victim results.csv")
ev:submit({ { x = 1, obj = 1 } }); ev:gather("ALL")
local ok, err = pcall(ev.dump_jobs_done_to_csv, ev, ".", "results.csv")
report { ok = ok, err = tostring(err), kept = #ev.jobs_done }
]])
    assert.is_false(t.ok)
    assert.truthy(t.err:find("results.csv", 1, true) and t.err:find("symbolic link", 1, true), t.err)
    assert.are.equal(1, t.kept)
    assert.are.equal("secret\n", H.read_file(dir .. "/victim"))
  end)

  it("two processes dumping 2,000 rows each with widening columns into one CSV: all 4,000 rows, one header", function()
    local dir = keep(H.tmpdir())
    local function writer(name)
      return ([[
local ev <close> = evaluator.create(function(job) return job.parameters.i end, "serial")
for chunk = 0, 39 do
  local batch = {}
  for k = 1, 50 do batch[k] = { who = %q, i = chunk * 50 + k, ["c" .. ("%%02d"):format(chunk) .. "_%s"] = chunk } end
  ev:submit(batch)
  ev:gather("ALL")
  ev:dump_jobs_done_to_csv("%s", "shared.csv")
end
]]):format(name, name, dir)
    end
    local rs = H.run_parallel({ { writer("a"), { timeout = 120 } }, { writer("b"), { timeout = 120 } } })
    for _, r in ipairs(rs) do assert.are.equal(0, r.code, H.describe(r)) end
    local rows = H.read_csv(dir .. "/shared.csv")
    local header = rows[1]
    local who, i = index_of(header, "p:who"), index_of(header, "p:i")
    assert.truthy(who and i, "columns p:who and p:i")
    assert.truthy(index_of(header, "p:c39_a") and index_of(header, "p:c39_b"), "the header holds the widest columns")
    local seen, n = {}, 0
    for r = 2, #rows do
      local key = rows[r][who] .. ":" .. rows[r][i]
      assert.is_nil(seen[key], "row written twice: " .. key)
      assert.are_not.equal("p:who", rows[r][who], "a header line in the body")
      seen[key] = true
      n = n + 1
    end
    assert.are.equal(4000, n)
  end)

  it("closes a quote left open at the end of an existing file instead of swallowing the new rows", function()
    for _, widen in ipairs({ false, true }) do
      local _, dir = csv(([[
ev:submit({ { x = 0, obj = 0 } }); ev:gather("ALL"); ev:dump_jobs_done_to_csv(".", "damaged.csv")
local f = io.open("damaged.csv", "a"); f:write('"open,1,7\n'); f:close()
ev:submit({ { x = 1, obj = 1 }, { x = 2, obj = 2 %s } }); ev:gather("ALL")
ev:dump_jobs_done_to_csv(".", "damaged.csv")
report {}
]]):format(widen and ", extra = 'e'" or ""))
      local rows = H.read_csv(dir .. "/damaged.csv")
      assert.are.equal(5, #rows, (widen and "rewrite" or "append") .. ": " .. H.read_file(dir .. "/damaged.csv"))
      local x = index_of(rows[1], "p:x")
      assert.are.equal("open,1,7\n", rows[3][index_of(rows[1], "p:obj")], "the damaged record keeps its bytes")
      assert.are.same({ "0", "1", "2" }, { rows[2][x], rows[4][x], rows[5][x] })
    end
  end)

  it("writes a job whose metadata cannot be written with the cell replaced and a warning, blocking no one", function()
    local m = H.METHODS[1]
    local r = H.run(([[
-- A run function's output cannot carry a function or a cycle under any method (it crosses as
-- bytes); a callback can put one into a job's metadata, which is what the CSV writer then sees.
local cb = { on_done = function(_, job)
  if job.parameters.i == 3 then job.metadata.bad_fn = print end
  if job.parameters.i == 5 then local c = {}; c.c = c; job.metadata.bad_cycle = c end
end }
local ev <close> = evaluator.create(function(job)
  return { objective = job.parameters.i, metadata = { fine = job.parameters.i } }
end, %q, { callbacks = { cb } })
if ev then
  local batch = {}
  for i = 1, 8 do batch[i] = { i = i } end
  ev:submit(batch); ev:gather("ALL")
  ev:dump_jobs_done_to_csv(".", "results.csv")
  local left = #ev.jobs_done
  ev:submit({ { i = 9 } }); ev:gather("ALL")
  ev:dump_jobs_done_to_csv(".", "results.csv")
  report { left = left }
end
]]):format(m.name), { np = m.np, keep = true })
    keep(r.dir)
    assert.are.same({ left = 0 }, H.result(r))
    local recs = H.read_csv_records(r.dir .. "/results.csv")
    assert.are.equal(9, #recs)
    local by = {}
    for _, rec in ipairs(recs) do by[rec["p:i"]] = rec end
    assert.truthy(by["3"]["m:bad_fn"]:match("^function: "), by["3"]["m:bad_fn"])
    assert.truthy(by["5"]["m:bad_cycle"]:match("^table: "), by["5"]["m:bad_cycle"])
    assert.are.equal("8", by["8"]["m:fine"])
    assert.truthy(r.stderr:find('job 0.2: metadata "bad_fn" is a function', 1, true), r.stderr)
    assert.truthy(r.stderr:find('job 0.4: metadata "bad_cycle"', 1, true) and r.stderr:find("cyclic", 1, true), r.stderr)
  end)
end)

describe("ev:decode follows Python's json.loads", function()
  it("keeps null in arrays and objects (evaluator.null), reads NaN and Infinity, and big integers as floats", function()
    local t = H.eval([[
local ev <close> = evaluator.create(function() return 0 end, "serial")
local text = '{"a":[1,null,3],"b":null,"big":9223372036854775808,"f":2.5,"i":Infinity,"max":9223372036854775807,"min":-9223372036854775808,"n":NaN,"ni":-Infinity,"under":-9223372036854775809}'
local v = ev:decode(text)
report {
  len = #v.a, hole = v.a[2] == evaluator.null, b = v.b == evaluator.null, same_null = evaluator.null == cjson.null,
  back = ev:convert_for_csv(v), round = ev:convert_for_csv(ev:decode(ev:convert_for_csv(v))) == ev:convert_for_csv(v),
  nan = v.n ~= v.n, inf = v.i == math.huge, ninf = v.ni == -math.huge,
  big = math.type(v.big), big_value = v.big == 2.0^63, max = math.type(v.max), max_ok = v.max == math.maxinteger,
  min_ok = v.min == math.mininteger and math.type(v.min) == "integer", under = math.type(v.under),
}
]])
    assert.are.equal(3, t.len)
    assert.is_true(t.hole and t.b and t.same_null)
    assert.are.equal('{"a":[1,null,3],"b":null,"big":9.223372036854776e+18,"f":2.5,"i":Infinity,'
      .. '"max":9223372036854775807,"min":-9223372036854775808,"n":NaN,"ni":-Infinity,"under":-9.223372036854776e+18}', t.back)
    assert.is_true(t.round and t.nan and t.inf and t.ninf and t.big_value and t.max_ok and t.min_ok)
    assert.are.same({ "float", "integer", "float" }, { t.big, t.max, t.under })
  end)
end)
