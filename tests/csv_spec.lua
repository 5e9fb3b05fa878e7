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

describe("dump_jobs_done_to_csv", function()
  local dirs = {}
  after_each(function()
    for _, d in ipairs(dirs) do H.rmdir(d) end
    dirs = {}
  end)
  local function csv(body, m, run)
    local t, dir = run_csv(body, m, run)
    dirs[#dirs + 1] = dir
    return t, dir
  end

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
