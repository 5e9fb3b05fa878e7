-- storage_spec.lua: evaluator.SQLiteStorage(path): the storage API, exact values, resuming a
-- search from a second process, unknown search ids, two processes sharing one file, a path that
-- cannot be opened; and RedisStorage, which is not implemented.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

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

describe("RedisStorage", function()
  it("raises an error saying it is not implemented", function()
    local t = H.eval([[
local ok, err = pcall(evaluator.RedisStorage, { host = "localhost", port = 6379 })
report { ok = ok, err = tostring(err) }
]], { timeout = 20 })
    assert.is_false(t.ok)
    assert.truthy(t.err:lower():find("not implemented", 1, true), t.err)
  end)
end)
