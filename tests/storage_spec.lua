-- storage_spec.lua: evaluator.SQLiteStorage(path): the storage API, exact values, resuming a
-- search from a second process, unknown search ids, two processes sharing one file, a path that
-- cannot be opened; many ranks opening a new file at once; kill -9 then resume; evaluators
-- sharing a search; damaged, foreign and locked files; export. (redis_spec.lua: the same for Redis.)
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"
local C = require "storage_cases"

local function STORE(dir) return ("evaluator.SQLiteStorage(%q)"):format(dir .. "/store.db") end

-- Runs python3 code (with sqlite3 imported and DB the path of store.db in dir); returns its output.
local function py(dir, code)
  local p = assert(io.popen(("cd %s && python3 -c %s 2>&1"):format(H.quote(dir),
    H.quote("import sqlite3, sys, os, random\nDB = 'store.db'\n" .. code))))
  local out = p:read("a")
  p:close()
  return out
end

-- Runs `script` in `dir` (kept by the caller) with the serial method's one rank.
local function run_in(dir, script, opts)
  opts = opts or {}
  opts.dir = dir
  opts.timeout = opts.timeout or 30
  return H.run(script, opts)
end

-- One search's run: evaluator on storage `db` (and search_id given as arg[1] when there is one),
-- submits jobs with parameters of every kind, reports ids and what storage and gather return.
local RUN_SEARCH = [[
local sid = arg[1]
local store = evaluator.SQLiteStorage("store.db")
local function run(job)
  local p = job.parameters
  return { objective = p.i * 2, metadata = { s = "m\0e" .. p.i, big = math.maxinteger - p.i, f = 0.1 * p.i, nested = { a = { 1, 2.5 } } } }
end
local ev <close> = evaluator.create(run, "serial", { storage = store, search_id = sid })
local first_i = tonumber(arg[2]) or 1
local list = {}
for i = first_i, first_i + 2 do list[#list + 1] = { i = i, name = "n\0ul" .. i, fl = i + 0.5, flag = i % 2 == 0 } end
ev:submit(list)
local done, others = ev:gather("ALL")
local ids = {}
for _, j in ipairs(done) do ids[#ids + 1] = j.id end
table.sort(ids)
local other_ids = {}
for _, j in ipairs(others) do other_ids[#other_ids + 1] = j.id end
table.sort(other_ids)
local again = ev:gather_other_jobs_done()
-- one more round: the earlier run's jobs are not returned twice
ev:submit({ { i = 100 + first_i, name = "x", fl = 0.25, flag = true } })
local done2, others2 = ev:gather("ALL")
report { search_id = ev.search_id, ids = ids, other_ids = other_ids, again = #again, others2 = #others2,
  last_id = done2[1].id }
]]

describe("SQLiteStorage", function()
  it("create_new_search, load_all_search_ids, load_all_job_ids, load_jobs: values exact", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local t = H.result(run_in(dir, [==[
local store = evaluator.SQLiteStorage("store.db")
local s1 = store:create_new_search()
local s2 = store:create_new_search()
local ev <close> = evaluator.create(function(job)
  local p = job.parameters
  return { objective = p.i, metadata = { s = "a\0b\255", big = math.maxinteger, small = math.mininteger, f = 0.1, tiny = 5e-324, t = { 1, { x = "y" } } } }
end, "serial", { storage = store, search_id = s2 })
ev:submit({ { i = 7, s = "p\0q\200", f = 1 / 3, big = math.mininteger, b = false, nested = { k = { 1, 2, 3 }, e = "" } }, { i = 2.5 } })
ev:gather("ALL")
local search_ids = store:load_all_search_ids()
local job_ids = store:load_all_job_ids(s2)
local empty_ids = store:load_all_job_ids(s1)
local jobs = store:load_jobs(job_ids)
local j7
for _, j in pairs(jobs) do if j.parameters.i == 7 then j7 = j end end
local p, md = j7.parameters, j7.metadata
report {
  s1 = s1, s2 = s2, s1t = type(s1), search_ids = search_ids, job_ids = job_ids, empty_n = #empty_ids,
  njobs = (function() local n = 0 for _ in pairs(jobs) do n = n + 1 end return n end)(),
  keyed_by_id = jobs[job_ids[1]] ~= nil,
  id = j7.id, status = j7.status, obj = j7.objective, obj_t = math.type(j7.objective),
  i_t = math.type(p.i), s_ok = p.s == "p\0q\200", f_ok = p.f == 1 / 3, pbig_ok = p.big == math.mininteger and math.type(p.big) == "integer",
  b_t = type(p.b), b = p.b, nested_ok = p.nested and p.nested.k[3] == 3 and math.type(p.nested.k[3]) == "integer" and p.nested.e == "",
  md_s_ok = md.s == "a\0b\255", md_big_ok = md.big == math.maxinteger and math.type(md.big) == "integer",
  md_small_ok = md.small == math.mininteger, md_f_ok = md.f == 0.1 and math.type(md.f) == "float", md_tiny_ok = md.tiny == 5e-324,
  md_t_ok = type(md.t) == "table" and md.t[1] == 1 and md.t[2].x == "y",
  ts_ok = type(md.timestamp_submit) == "number" and type(md.timestamp_gather) == "number",
  other_float = (function() for _, j in pairs(jobs) do if j.parameters.i ~= 7 then return math.type(j.parameters.i) .. ":" .. math.type(j.objective) end end end)(),
}
]==]))
      assert.are.equal("string", t.s1t)
      assert.are_not.equal(t.s1, t.s2)
      local have = {}
      for _, s in ipairs(t.search_ids) do have[s] = true end
      assert.is_true(have[t.s1] and have[t.s2], "load_all_search_ids: " .. table.concat(t.search_ids, ","))
      assert.are.equal(2, #t.job_ids)
      table.sort(t.job_ids)
      assert.are.same({ t.s2 .. ".0", t.s2 .. ".1" }, t.job_ids)
      assert.are.equal(0, t.empty_n)
      assert.are.equal(2, t.njobs)
      assert.is_true(t.keyed_by_id, "load_jobs returns job_id -> job")
      assert.are.same({ t.s2 .. ".0", "DONE", 7, "integer" }, { t.id, t.status, t.obj, t.obj_t })
      assert.are.equal("integer", t.i_t)
      for _, k in ipairs({ "s_ok", "f_ok", "pbig_ok", "nested_ok", "md_s_ok", "md_big_ok", "md_small_ok", "md_f_ok", "md_tiny_ok", "md_t_ok", "ts_ok" }) do
        assert.is_true(t[k], k)
      end
      assert.are.same({ "boolean", false }, { t.b_t, t.b })
      assert.are.equal("float:float", t.other_float)
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("a second run given the same path and search_id continues the search: ids follow, earlier jobs come back once", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local a = H.result(run_in(dir, RUN_SEARCH))
      local b = H.result(run_in(dir, RUN_SEARCH, { args = { a.search_id, "11" } }))
      local sid = a.search_id
      assert.are.same({ sid .. ".0", sid .. ".1", sid .. ".2" }, a.ids)
      assert.are.same({}, a.other_ids)
      assert.are.equal(sid .. ".3", a.last_id)
      assert.are.equal(sid, b.search_id)
      assert.are.same({ sid .. ".4", sid .. ".5", sid .. ".6" }, b.ids, "the second run's ids follow the stored ones")
      assert.are.same({ sid .. ".0", sid .. ".1", sid .. ".2", sid .. ".3" }, b.other_ids, "gather returns the earlier run's jobs")
      assert.are.equal(0, b.again, "gather_other_jobs_done returned the earlier jobs a second time")
      assert.are.equal(0, b.others2)
      assert.are.equal(sid .. ".7", b.last_id)
      -- and the storage holds all of them
      local t = H.result(run_in(dir, ([[
local store = evaluator.SQLiteStorage("store.db")
local ids = store:load_all_job_ids(%q)
local jobs = store:load_jobs(ids)
local exact = true
for id, j in pairs(jobs) do
  local p = j.parameters
  if p.name ~= "x" and (p.name ~= "n\0ul" .. p.i or math.type(p.i) ~= "integer" or p.fl ~= p.i + 0.5) then exact = false end
  if j.metadata.s ~= "m\0e" .. p.i or j.metadata.big ~= math.maxinteger - p.i or math.type(j.metadata.big) ~= "integer" then exact = false end
end
report { n = #ids, exact = exact }
]]):format(sid)))
      assert.are.same({ n = 8, exact = true }, t)
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("an unknown search_id raises an error", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local t = H.result(run_in(dir, [[
local store = evaluator.SQLiteStorage("store.db")
local sid = store:create_new_search()
local ok, err = pcall(evaluator.create, function() return 1 end, "serial", { storage = store, search_id = "no-such-search" })
local ok2, err2 = pcall(store.load_all_job_ids, store, "no-such-search")
report { ok = ok, err = tostring(err), ok2 = ok2 }
]]))
      assert.is_false(t.ok)
      assert.truthy(t.err:find("no-such-search", 1, true), t.err)
      assert.is_false(t.ok2)
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("two processes started at once sharing one file (one search) get distinct job ids", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local sid = H.result(run_in(dir, [[
local store = evaluator.SQLiteStorage("store.db")
report { sid = store:create_new_search() }
]])).sid
      H.write_file(dir .. "/both.lua", H.PRELUDE .. [[
local store = evaluator.SQLiteStorage("store.db")
local ev <close> = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store, search_id = arg[1] })
local ids = {}
for round = 1, 10 do
  local l = {}
  for i = 1, 3 do l[i] = { i = i, who = arg[2] } end
  ev:submit(l)
  for _, j in ipairs(ev:gather("ALL")) do ids[#ids + 1] = j.id end
end
local f = assert(io.open("ids." .. arg[2], "w"))
f:write(table.concat(ids, "\n"), "\n")
f:close()
]])
      local cmd = ("cd %s && (timeout -k 2 30 %s both.lua %s A >out.A 2>&1 & timeout -k 2 30 %s both.lua %s B >out.B 2>&1 & wait)")
        :format(H.quote(dir), H.quote(H.BIN), H.quote(sid), H.quote(H.BIN), H.quote(sid))
      os.execute(cmd)
      local seen, n = {}, 0
      for _, who in ipairs({ "A", "B" }) do
        local text = H.read_file(dir .. "/ids." .. who)
        assert(text, "process " .. who .. " wrote no ids: " .. (H.read_file(dir .. "/out." .. who) or ""))
        for id in text:gmatch("[^\n]+") do
          assert.is_nil(seen[id], ("job id %s given to %s and %s"):format(id, tostring(seen[id]), who))
          assert.truthy(id:find("^" .. sid:gsub("%p", "%%%0") .. "%.%d+$"), id)
          seen[id] = who
          n = n + 1
        end
      end
      assert.are.equal(60, n)
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("a path in a missing directory raises an error naming the path", function()
    local t = H.eval([[
local ok, err = pcall(evaluator.SQLiteStorage, "/nonexistent-dir-evl/sub/store.db")
report { ok = ok, err = tostring(err) }
]], { timeout = 20 })
    assert.is_false(t.ok)
    assert.truthy(t.err:find("/nonexistent-dir-evl/sub/store.db", 1, true), t.err)
  end)
end)


describe("SQLiteStorage shared by ranks, processes and runs", function()
  it("10 runs of 6 ranks opening one new file at once: no failure", function()
    local script = [[
local store = evaluator.SQLiteStorage("new.db")
local ev <close> = evaluator.create(function(job) return job.parameters.i end, "mpicomm", { storage = store })
if ev then
  local l = {}
  for i = 1, 10 do l[i] = { i = i } end
  ev:submit(l)
  report { n = #ev:gather("ALL"), stored = #store:load_all_job_ids(ev.search_id) }
end
]]
    for run = 1, 10 do
      local r = H.run(script, { np = 6, timeout = 90 })
      local t = H.result(r)
      assert.are.same({ n = 10, stored = 10 }, t, "run " .. run)
    end
  end)

  C.its(it, STORE, function() return "store.db" end)
end)

-- The journal files beside store.db in dir.
local function journals(dir)
  local p = assert(io.popen("ls -a " .. H.quote(dir)))
  local out = {}
  for name in p:read("a"):gmatch("[^\n]+") do
    if name:match("^store%.db%-evl%-%x+%-%x+$") then out[#out + 1] = name end
  end
  p:close()
  return out
end

describe("SQLiteStorage's journal: a fast loop's stores", function()
  it("are folded while it runs; after kill -9 the next process folds them once, a torn end ignored, damage named", function()
    C.kill_and_resume(STORE, {
      busy = 0, -- no-op jobs: a store every few microseconds, which the journal takes
      min_unfinished = 0,
      before_kill = function(dir, returned)
        H.sleep(0.5) -- folds come every 50 ms while the loop runs
        local stored = tonumber(py(dir, "print(sqlite3.connect(DB).execute('SELECT count(*) FROM jobs').fetchone()[0])"))
        assert.is_true(stored and stored >= returned,
          ("0.5 s after gather had returned %d jobs, the file held %s"):format(returned, tostring(stored)))
      end,
      before_resume = function(dir)
        local js = journals(dir)
        assert.are.equal(1, #js, "the killed root left no journal: " .. table.concat(js, " "))
        local path = dir .. "/" .. js[1]
        local bytes = assert(H.read_file(path))
        assert.is_true(#bytes > 24, "an empty journal")
        -- a copy under another writer's name, damaged inside its first entry: refused, named
        local copy_name = js[1]:match("^(store%.db%-evl%-%x+%-)") .. "00000000000000aa"
        local copy = dir .. "/" .. copy_name
        H.write_file(copy, bytes:sub(1, 30) .. string.char((bytes:byte(31) + 1) % 256) .. bytes:sub(32))
        local r = run_in(dir, 'evaluator.SQLiteStorage("store.db")')
        assert.are_not.equal(0, r.code, H.describe(r))
        assert.truthy(r.stderr:find(copy_name .. " is damaged at byte 0", 1, true)
          and r.stderr:find("move it away", 1, true), H.describe(r))
        assert.truthy(r.stderr:find("script.lua:%d+: SQLiteStorage"), "the error names the user's line: " .. H.describe(r))
        os.remove(copy)
        -- an entry the kill interrupted: all of it but its magic, which is written last, at the
        -- end of the log (the first zero magic after the entries: string.unpack walks them)
        local at = 0
        while bytes:sub(at + 1, at + 4) == "EVJ1" do at = at + 32 + string.unpack("<I4", bytes, at + 5) end
        assert.are.equal("\0\0\0\0", bytes:sub(at + 1, at + 4), "the log ends with a zero magic")
        local f = assert(io.open(path, "r+b"))
        f:seek("set", at)
        f:write("\0\0\0\0", string.pack("<I4", 8), ("\xff"):rep(24), "torn job")
        f:close()
      end,
      after = function(dir)
        assert.are.same({}, journals(dir), "the folded journal is still there")
        assert.are.equal("0\n", py(dir, "print(sqlite3.connect(DB).execute("
          .. "'SELECT count(*) FROM (SELECT 1 FROM jobs GROUP BY search, n HAVING count(*) > 1)').fetchone()[0])"),
          "a job was stored twice")
        assert.are.equal("0\n", py(dir, "print(sqlite3.connect(DB).execute('SELECT count(*) FROM journals').fetchone()[0])"),
          "the records of the journals removed (the dead one, the resumed run's) stay")
      end,
    })
  end)

  it("leave no record behind once removed: 5 runs of a fast loop, each closing, leave the journals table empty", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      for _ = 1, 5 do
        local t = H.result(run_in(dir, [[
local store = evaluator.SQLiteStorage("store.db")
local ev <close> = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store })
for i = 1, 300 do ev:submit({ { i = i } }); ev:gather("ALL") end -- rounds microseconds apart: the journal's pace
report { n = #store:load_all_job_ids(ev.search_id) }
]]))
        assert.are.equal(300, t.n)
      end
      assert.are.same({}, journals(dir), "a journal file is left")
      assert.are.equal("5 0\n", py(dir, "c = sqlite3.connect(DB)\n"
        .. "print(c.execute('SELECT count(*) FROM jobs').fetchone()[0] // 300, c.execute('SELECT count(*) FROM journals').fetchone()[0])"),
        "5 searches' jobs, and no journal's record (one per run was left behind)")
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)

  -- A writes its journal and is killed before folding it; B, open on the search since before A
  -- started, must see A's last jobs without anyone opening the database again.
  it("of a writer killed with them unfolded reach an evaluator still running the search within seconds", function()
    local dir, pids = H.tmpdir(), {}
    local ok, err = pcall(function()
      H.write_file(dir .. "/b.lua", H.PRELUDE .. [[
local store = evaluator.SQLiteStorage("store.db")
local ev <close> = evaluator.create(function() return 0 end, "serial", { storage = store })
local f = io.open("/proc/self/stat"); local pid = f:read("a"):match("^(%d+)"); f:close()
f = io.open("sid.tmp", "w"); f:write(tostring(ev.search_id), "\n", pid); f:close(); os.rename("sid.tmp", "sid.txt")
local t0 = evaluator.mpi.wtime()
while not io.open("killed") do wait_s(0.02); assert(evaluator.mpi.wtime() - t0 < 40, "never told A was killed") end
local seen, n = {}, 0
t0 = evaluator.mpi.wtime()
while evaluator.mpi.wtime() - t0 < 8 and not io.open("enough") do
  for _, job in ipairs(ev:gather_other_jobs_done()) do if not seen[job.id] then seen[job.id] = true; n = n + 1 end end
  local out = io.open("seen.tmp", "w"); for id in pairs(seen) do out:write(id, "\n") end; out:close(); os.rename("seen.tmp", "seen.txt")
  wait_s(0.05)
end
]])
      H.write_file(dir .. "/a.lua", H.PRELUDE .. [[
local store = evaluator.SQLiteStorage("store.db")
local ev = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store, search_id = arg[1] })
local ids = {}
for i = 1, 300 do -- rounds microseconds apart: the journal takes them
  ev:submit({ { i = i } })
  for _, job in ipairs(ev:gather("ALL")) do ids[#ids + 1] = job.id end
end
local f = io.open("/proc/self/stat"); local pid = f:read("a"):match("^(%d+)"); f:close()
f = io.open("a.tmp", "w"); f:write(pid, "\n", table.concat(ids, "\n"), "\n"); f:close(); os.rename("a.tmp", "a.txt")
wait_s(60) -- no call to the evaluator: the journal keeps what the last fold did not take
]])
      local q = H.quote
      os.execute(("cd %s && (timeout -k 5 60 %s b.lua >b.out 2>&1 &)"):format(q(dir), q(H.BIN)))
      assert(H.wait_until(function() return H.exists(dir .. "/sid.txt") end, 30, 0.05), "B did not start: " .. tostring(H.read_file(dir .. "/b.out")))
      local sid, b_pid = H.read_file(dir .. "/sid.txt"):match("^(.-)\n(%d+)$")
      pids[#pids + 1] = b_pid
      os.execute(("cd %s && (timeout -k 5 60 %s a.lua %s >a.out 2>&1 &)"):format(q(dir), q(H.BIN), q(sid)))
      assert(H.wait_until(function() return H.exists(dir .. "/a.txt") end, 30, 0.05), "A did not finish its loop: " .. tostring(H.read_file(dir .. "/a.out")))
      local lines = {}
      for l in H.read_file(dir .. "/a.txt"):gmatch("[^\n]+") do lines[#lines + 1] = l end
      pids[#pids + 1] = lines[1]
      os.execute("kill -9 " .. lines[1])
      assert(H.wait_until(function() return not H.exists("/proc/" .. lines[1]) end, 10, 0.05), "A did not die")
      assert.is_true(#journals(dir) >= 1, "A left no journal: nothing to test")
      H.write_file(dir .. "/killed", "")
      local want = {}
      for i = 2, #lines do want[#want + 1] = lines[i] end
      assert.are.equal(300, #want)
      local missing
      local t0 = H.now()
      H.wait_until(function()
        local seen = {}
        for id in (H.read_file(dir .. "/seen.txt") or ""):gmatch("[^\n]+") do seen[id] = true end
        missing = {}
        for _, id in ipairs(want) do if not seen[id] then missing[#missing + 1] = id end end
        return #missing == 0
      end, 8, 0.05)
      local took = H.now() - t0
      H.write_file(dir .. "/enough", "")
      assert.are.same({}, missing, "B never saw these jobs A's gather had returned")
      assert.is_true(took < 5, ("B saw them only after %.1f s"):format(took))
      assert(H.wait_until(function() return not H.exists("/proc/" .. b_pid) end, 15, 0.1), "B did not end")
      assert.are.equal("", H.read_file(dir .. "/b.out"), "B's output")
    end)
    for _, pid in ipairs(pids) do os.execute("kill -9 " .. pid .. " 2>/dev/null") end
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("of two evaluators sharing one SQLiteStorage object reach each other at once", function()
    local t = H.eval([[
local store = evaluator.SQLiteStorage("store.db")
local a <close> = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store })
local b <close> = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store, search_id = a.search_id })
local missed, seen = 0, 0
for i = 1, 200 do -- rounds microseconds apart: the journal's pace
  a:submit({ { i = i } })
  local mine = a:gather("ALL")
  b:submit({ { i = -i } })
  local _, others = b:gather("ALL")
  local found = false
  for _, j in ipairs(others) do found = found or j.id == mine[1].id end
  if found then seen = seen + 1 else missed = missed + 1 end
end
report { missed = missed, seen = seen, stored = #store:load_all_job_ids(a.search_id) }
]], { timeout = 60 })
    assert.are.equal(0, t.missed, "b's gather did not return a's job just finished, " .. t.missed .. " times")
    assert.are.equal(400, t.stored)
  end)

  -- A process pool's worker is a fork of the root: its copy of the storage shares the root's
  -- connection and journal mapping, and must not write through them.
  it("belong to the process that opened them: a forked worker calling one gets an error saying so", function()
    local t = H.eval([[
local store = evaluator.SQLiteStorage("store.db")
local ev <close> = evaluator.create(function() return #store:load_all_search_ids() end, "process",
  { num_workers = 1, storage = store })
ev:submit({ {} })
local job = ev:gather("ALL")[1]
report { objective = job.objective, error = tostring(job.metadata.error), here = #store:load_all_search_ids() }
]], { timeout = 60 })
    assert.are.equal("F", t.objective, "the worker's call did not fail")
    assert.truthy(t.error:find("was opened by another process", 1, true), t.error)
    assert.are.equal(1, t.here, "the root's own calls still work")
  end)

  -- The core encodes each submitted table alone and the storage keeps the list it made of them;
  -- in the list each is one level deeper: one at the depth limit must not be stored unreadable.
  it("keep a submitted list one level short of the depth limit out, with the error that names it", function()
    local t = H.eval([[
local function deep(n) local t = {} for _ = 1, n do t = { t } end return t end
local store = evaluator.SQLiteStorage("store.db")
local ev <close> = evaluator.create(function(job) return 1 end, "serial", { storage = store })
ev:submit({ { x = deep(198) }, { y = 1 } })
local ok, err = pcall(ev.gather, ev, "ALL")
local other = evaluator.SQLiteStorage("store.db")
local reader <close> = evaluator.create(function() return 1 end, "serial", { storage = other, search_id = ev.search_id })
local ok2, unfinished = pcall(reader.unfinished_jobs, reader)
report { ok = ok, err = tostring(err), ok2 = ok2, unfinished = ok2 and #unfinished or tostring(unfinished) }
]], { timeout = 60 })
    assert.is_false(t.ok)
    assert.truthy(t.err:find("nested too deeply", 1, true), t.err)
    assert.is_true(t.ok2, "the stored search does not read back: " .. tostring(t.unfinished))
    assert.are.equal(0, t.unfinished)
  end)

  it("are in the file while a gather after them waits for a long job", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local t = H.result(H.run([[
local store = evaluator.SQLiteStorage("store.db")
local ev <close> = evaluator.create(function(job) wait_s(job.parameters.s or 0) return 1 end, "mpicomm", { storage = store })
if ev then
  ev:submit({ {}, {}, {}, {} })
  local n, submitted = 0, 4
  while n < 400 do
    local k = #ev:gather("BATCH", 1)
    n = n + k
    for _ = 1, math.min(k, 400 - submitted) do ev:submit({ {} }); submitted = submitted + 1 end
  end
  -- 1 s into the next gather's wait, another process counts the jobs in the file
  os.execute([=[(sleep 1; ls store.db-evl-* > journals.txt; python3 -c "import sqlite3; print(sqlite3.connect('store.db').execute('SELECT count(*) FROM jobs').fetchone()[0])" > count.txt) &]=])
  ev:submit({ { s = 3 } })
  ev:gather("ALL")
  local f = io.open("count.txt"); local count = f and tonumber(f:read("a")); if f then f:close() end
  f = io.open("journals.txt"); local journals = f and f:read("a") or ""; if f then f:close() end
  report { n = n, count = count, journals = journals }
end
]], { dir = dir, np = 2, timeout = 60 }))
      assert.are.equal(400, t.n)
      assert.truthy(t.journals:find("store.db-evl-", 1, true), "the fast loop wrote no journal: " .. t.journals)
      assert.are.equal(400, t.count, "1 s into the wait, the file held " .. tostring(t.count) .. " of the 400 jobs")
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)
end)

describe("SQLiteStorage: bad files, failed writes", function()
  it("a damaged file: every call raises or returns everything, never a shorter result", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local sid = H.result(H.run([[
local store = evaluator.SQLiteStorage("store.db")
local ev <close> = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store })
for r = 1, 30 do
  local l = {}
  for i = 1, 100 do l[i] = { i = i, pad = ("x"):rep(200) } end
  ev:submit(l)
  ev:gather("ALL")
end
report { sid = ev.search_id }
]], { dir = dir, timeout = 60 })).sid
      -- a third of the pages after the first overwritten with noise
      py(dir, [[
size = os.path.getsize(DB); pages = size // 4096
random.seed(7)
with open(DB, 'r+b') as f:
    for p in random.sample(range(1, pages), pages // 3):
        f.seek(p * 4096); f.write(bytes(random.getrandbits(8) for _ in range(4096)))
]])
      local t = H.result(H.run(([[
local sid = %q
local results = {}
local function try(name, f)
  local ok, v = pcall(f)
  results[name] = ok and ("ok " .. v) or ("error " .. tostring(v))
end
local store
try("open", function() store = evaluator.SQLiteStorage("store.db"); return 0 end)
if store then
  local ids
  try("ids", function() ids = store:load_all_job_ids(sid); return #ids end)
  if ids then
    try("load", function()
      local n = 0
      for _ in pairs(store:load_jobs(ids)) do n = n + 1 end
      return n
    end)
  end
  try("others", function()
    local ev <close> = evaluator.create(function() return 0 end, "serial", { storage = store, search_id = sid })
    return #ev:gather_other_jobs_done()
  end)
end
report(results)
]]):format(sid), { dir = dir, timeout = 60 }))
      local errors = 0
      for name, v in pairs(t) do
        if v:match("^error") then
          errors = errors + 1
          assert.truthy(v:find("store.db", 1, true), name .. ": the error names the file: " .. v)
        elseif name ~= "open" then
          assert.are.equal("ok 3000", v, name .. " returned a shorter result without an error")
        end
      end
      assert.is_true(errors > 0, "a third of the pages damaged and no call noticed")
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("another program's database is refused before anything in it changes; a non-SQLite file is an error", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      py(dir, "c = sqlite3.connect(DB); c.execute('CREATE TABLE users (name TEXT)'); c.execute(\"INSERT INTO users VALUES ('ann')\"); c.commit()")
      H.write_file(dir .. "/notes.db", ("not a database at all\n"):rep(200))
      local t = H.result(H.run([[
local ok, err = pcall(function() local s = evaluator.SQLiteStorage("store.db"); return s end)
local ok2, err2 = pcall(evaluator.SQLiteStorage, "notes.db")
report { ok = ok, err = tostring(err), ok2 = ok2, err2 = tostring(err2) }
]], { dir = dir, timeout = 30 }))
      assert.is_false(t.ok)
      assert.truthy(t.err:find('SQLiteStorage("store.db")', 1, true), t.err)
      assert.truthy(t.err:find("not an evaluator-lua storage", 1, true), t.err)
      assert.truthy(t.err:find("script.lua:2:", 1, true), "the error names the user's line: " .. t.err)
      assert.are.equal("delete|users", py(dir, "c = sqlite3.connect(DB); print(c.execute('PRAGMA journal_mode').fetchone()[0] + '|' + ','.join(r[0] for r in c.execute('SELECT name FROM sqlite_master')), end='')"))
      assert.is_false(t.ok2)
      assert.truthy(t.err2:find("notes.db", 1, true) and t.err2:find("not a database", 1, true), t.err2)
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("a failed step leaves no transaction open: another process can write at once", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local t = H.result(H.run([[
local store = evaluator.SQLiteStorage("store.db")
local ev <close> = evaluator.create(function(job) return 1 end, "serial", { storage = store })
ev:submit({ { i = 1 } })
ev:gather("ALL")
-- another program renames a table under our feet: the next write's statement fails after BEGIN
os.execute([=[python3 -c "import sqlite3; c = sqlite3.connect('store.db'); c.execute('ALTER TABLE jobs RENAME TO gone'); c.commit()"]=])
pcall(store.load_all_job_ids, store, ev.search_id) -- fails, and makes this connection read the new schema
local ok, err = pcall(function() ev:submit({ { i = 2 } }); ev:gather("ALL") end)
local p = io.popen([=[python3 -c "
import sqlite3
c = sqlite3.connect('store.db', timeout=0.5, isolation_level=None)
try:
    c.execute('BEGIN IMMEDIATE'); c.execute('ALTER TABLE gone RENAME TO jobs'); c.execute('COMMIT'); print('written')
except Exception as e:
    print('blocked:', e)
" 2>&1]=])
local other = p:read("a")
p:close()
report { ok = ok, err = tostring(err), other = other }
]], { dir = dir, timeout = 30 }))
      assert.is_false(t.ok)
      assert.truthy(t.err:find("store.db", 1, true), t.err)
      assert.are.equal("written\n", t.other, "the failed submit left the write lock held: " .. t.other)
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("a write that fails (the file locked too long) loses no job: the next gather stores and returns them", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local t = H.result(H.run([[
local store = evaluator.SQLiteStorage("store.db", { timeout = 0.3 })
local calls = 0
local ev <close> = evaluator.create(function(job) return job.parameters.i end, "serial",
  { storage = store, callbacks = { on_done = function() calls = calls + 1 end } })
ev:submit({ { i = 1 }, { i = 2 }, { i = 3 } })
-- another process holds the write lock for 2 s
os.execute([=[python3 -c "
import sqlite3, time
c = sqlite3.connect('store.db', isolation_level=None); c.execute('BEGIN IMMEDIATE'); open('locked', 'w').close(); time.sleep(2); c.execute('COMMIT')
" &]=])
while not io.open("locked") do end
local ok, err = pcall(ev.gather, ev, "ALL")
local kept, calls_then = #ev.jobs_done, calls
wait_s(2.5)
local again = ev:gather("ALL")
local ids = {}
for i, j in ipairs(again) do ids[i] = j.id end
report { ok = ok, err = tostring(err), kept = kept, calls_then = calls_then, ids = ids, calls = calls,
  stored = #store:load_all_job_ids(ev.search_id), jobs_done = #ev.jobs_done }
]], { dir = dir, timeout = 30 }))
      assert.is_false(t.ok)
      assert.truthy(t.err:find("not stored yet", 1, true) and t.err:find("0.0, 0.1, 0.2", 1, true), t.err)
      assert.truthy(t.err:find("script.lua:", 1, true), "the error names the user's line: " .. t.err)
      assert.are.equal(3, t.kept, "the jobs are in jobs_done")
      assert.are.equal(0, t.calls_then, "no callback saw a job that is not stored")
      assert.are.same({ "0.0", "0.1", "0.2" }, t.ids)
      assert.are.equal(3, t.calls)
      assert.are.equal(3, t.stored)
      assert.are.equal(3, t.jobs_done, "jobs_done holds each job once")
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("bad arguments: a search_id of the wrong type, a storage that is not one, a bad timeout", function()
    local t = H.eval([[
local store = evaluator.SQLiteStorage("store.db")
local function err(f, ...) local ok, e = pcall(f, ...) return ok and "no error" or tostring(e) end
report {
  sid = err(evaluator.create, function() return 1 end, "serial", { storage = store, search_id = {} }),
  store = err(evaluator.create, function() return 1 end, "serial", { storage = {} }),
  timeout = err(evaluator.SQLiteStorage, "x.db", { timeout = "long" }),
}
]], { timeout = 30 })
    assert.truthy(t.sid:find("search_id must be a string", 1, true), t.sid)
    assert.truthy(t.store:find("storage must be", 1, true), t.store)
    assert.truthy(t.timeout:find("timeout must be", 1, true), t.timeout)
  end)

  it("files are created with the user's umask and never world-writable (even with umask 000)", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      H.ok(H.run([[
local store = evaluator.SQLiteStorage("u.db")
local ev <close> = evaluator.create(function() return 1 end, "serial", { storage = store })
ev:submit({ {} })
ev:gather("ALL")
local p = io.popen("stat -c '%n %a' u.db*")
io.write(p:read("a"))
p:close()
]], { dir = dir, timeout = 30, bin = "/bin/sh", bin_args = { "-c", 'umask 000; exec "$0" "$@"', H.BIN } }))
      local r = H.run("", { dir = dir, script_arg = false, prelude = false, bin = "/bin/sh",
        bin_args = { "-c", "stat -c '%n %a' u.db*" }, timeout = 10 })
      local n = 0
      for name, mode in r.stdout:gmatch("(%S+) (%d+)") do
        n = n + 1
        assert.are.equal(0, tonumber(mode, 8) & 2, name .. " is world-writable: " .. mode)
      end
      assert.is_true(n >= 1, r.stdout)
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)
end)

describe("MemoryStorage", function()
  it("two evaluators of one process share a search; unfinished_jobs lists the other's jobs in flight, once resubmitted no more", function()
    local t = H.eval([[
local store = evaluator.MemoryStorage()
local a = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store })
local b = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store, search_id = a.search_id })
a:submit({ { i = 1 }, { i = 2 } })
b:submit({ { i = 3 } })
local un = b:unfinished_jobs()          -- a's two jobs, not yet run
local mine = a:unfinished_jobs()        -- b's one
b:submit({ un[1].parameters })          -- resubmitted by b
local again = b:unfinished_jobs()
local done_a = a:gather("ALL")
local done_b, others_b = b:gather("ALL")
report { un = #un, un_id = un[1].id, mine = #mine, again = #again, again_id = again[1] and again[1].id,
  done_a = #done_a, done_b = #done_b, others_b = #others_b, ids = #store:load_all_job_ids(a.search_id) }
]], { timeout = 30 })
    assert.are.same({ un = 2, un_id = "0.0", mine = 1, again = 1, again_id = "0.1", done_a = 2, done_b = 2, others_b = 2, ids = 4 }, t)
  end)
end)

describe("evaluator-lua export: bad input", function()
  it("each mistake is one clear error and exit status 1; nothing is written; a password is never echoed", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      H.ok(H.run('local s = evaluator.SQLiteStorage("store.db"); s:create_new_search()', { dir = dir, timeout = 30 }))
      local cases = {
        { { "export" }, "no STORAGE" },
        { { "export", "store.db", "-o", "x.csv" }, "no --search-id" },
        { { "export", "store.db", "--search-id", "0" }, "no -o" },
        { { "export", "store.db", "--search-id", "0", "-o", "x.csv", "--bogus" }, "unknown option '--bogus'" },
        { { "export", "missing.db", "--search-id", "0", "-o", "x.csv" }, "missing.db': no such file" },
        { { "export", "store.db", "--search-id", "7", "-o", "x.csv" }, "holds no search '7' (it holds: 0)" },
        { { "export", "redis://:hunter2-pw@127.0.0.1:1/0", "--search-id", "0", "-o", "x.csv" }, "cannot connect" },
        { { "export", "redis://:hunter2-pw@", "--search-id", "0", "-o", "x.csv" }, "a Redis URL is redis://" },
      }
      for _, c in ipairs(cases) do
        local r = H.run("", { dir = dir, script_arg = false, prelude = false, bin_args = c[1], timeout = 30 })
        assert.are.equal(1, r.code, H.describe(r))
        assert.truthy(r.stderr:find(c[2], 1, true), c[2] .. "\n" .. H.describe(r))
        assert.falsy(r.stderr:find("hunter2", 1, true), "the password was echoed\n" .. H.describe(r))
        assert.is_false(H.exists(dir .. "/x.csv"))
      end
      local r = H.run("", { dir = dir, script_arg = false, prelude = false, timeout = 30,
        bin_args = { "export", "store.db", "--search-id", "0", "-o", "x.csv" } })
      assert.are.equal(0, r.code, H.describe(r))
      assert.truthy(r.stderr:find("no finished job", 1, true), H.describe(r))
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)
end)

describe("thread workers and a storage", function()
  it("workers re-running the script make no search of their own", function()
    local t = H.eval([[
local st = evaluator.SQLiteStorage("runs.db")
local ev <close> = evaluator.create(function(job) return 1 end, "thread", { num_workers = 3, storage = st })
if ev then
  ev:submit({ {}, {}, {} })
  ev:gather("ALL")
  report { searches = #st:load_all_search_ids() }
end
]], { timeout = 60 })
    assert.are.equal(1, t.searches)
  end)
end)
