-- api_misc_spec.lua: decode, convert_for_csv, gather_other_jobs_done with a shared MemoryStorage,
-- closing (the <close> variable, close(), a script that leaves an evaluator open), and the TCP path.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

describe("ev:decode and ev:convert_for_csv", function()
  it("decode parses a JSON object and raises for anything else", function()
    local t = H.eval([[
local ev <close> = evaluator.create(function() return 0 end, "serial")
local v = ev:decode('{"a": 1, "b": [1, 2.5, "x"], "c": {"d": "e,f"}, "t": true, "s": "q\\"uote"}')
local empty = ev:decode("{}")
local bad = {}
for i, text in ipairs({ "[1, 2]", "42", '"str"', "null", "true", "not json", "", '{"a": 1', "[]" }) do
  local ok, err = pcall(ev.decode, ev, text)
  bad[i] = { text = text, ok = ok, err = type(err) == "string" and #err > 0 }
end
report { a = v.a, at = math.type(v.a), b1 = v.b[1], b2 = v.b[2], b3 = v.b[3], nb = #v.b, d = v.c.d, tt = v.t, s = v.s,
  empty = type(empty), bad = bad }
]])
    assert.are.same({ 1, "integer", 1, 2.5, "x", 3, "e,f", true, 'q"uote', "table" },
      { t.a, t.at, t.b1, t.b2, t.b3, t.nb, t.d, t.tt, t.s, t.empty })
    for _, b in ipairs(t.bad) do
      assert.is_false(b.ok, b.text .. " was accepted")
      assert.is_true(b.err, b.text .. ": the error has a message")
    end
    assert.are.equal(9, #t.bad)
  end)

  it("convert_for_csv turns a table into its JSON text and leaves other values as they are", function()
    local t = H.eval([[
local ev <close> = evaluator.create(function() return 0 end, "serial")
local j = ev:convert_for_csv({ a = 1, b = { 2, 3.5 }, c = "x" })
local back = cjson.decode(j)
local l = ev:convert_for_csv({ 1, 2, 3 })
report { jt = type(j), a = back.a, b2 = back.b[2], c = back.c, l = l:gsub("%s", ""),
  s = ev:convert_for_csv("plain, text"), i = math.type(ev:convert_for_csv(7)), f = math.type(ev:convert_for_csv(7.0)),
  f01 = ev:convert_for_csv(0.1) == 0.1, b = ev:convert_for_csv(true) }
]])
    assert.are.same({ jt = "string", a = 1, b2 = 3.5, c = "x", l = "[1,2,3]", s = "plain, text", i = "integer",
      f = "float", f01 = true, b = true }, t)
  end)
end)

for _, m in ipairs(H.METHODS) do
  describe(("a shared MemoryStorage (%s)"):format(m.name), function()
    it("gather_other_jobs_done returns what the other evaluator completed, once; ids follow the stored ones", function()
      -- ev1 (of the method under test) runs jobs; ev2, a serial evaluator on the root sharing its
      -- storage and search, sees them. (Two mpicomm evaluators cannot both be open on one comm:
      -- the workers serve the first until it closes.)
      local t = H.eval(([[
local M = %q
local run = function(job) return job.parameters.x end
local store = evaluator.MemoryStorage()
local sid = store:create_new_search()
local others_seen = 0
local cb = { on_done_other = function(self, job) others_seen = others_seen + 1 end }
local ev1 <close> = evaluator.create(run, M, { storage = store, search_id = sid })
if ev1 then
  ev1:submit({ { x = 1 }, { x = 2 }, { x = 3 } })
  ev1:gather("ALL")
  local ev2 <close> = evaluator.create(run, "serial", { storage = store, search_id = sid, callbacks = { cb } })
  local o1 = ev2:gather_other_jobs_done()
  local o1_ids = {}
  for i, j in ipairs(o1) do o1_ids[i] = j.id end
  table.sort(o1_ids)
  local o2 = ev2:gather_other_jobs_done()
  ev2:submit({ { x = 10 } })
  ev1:submit({ { x = 4 }, { x = 5 } })
  ev1:gather("ALL")
  local mine, others = ev2:gather("ALL")
  local other_objs = {}
  for i, j in ipairs(others) do other_objs[i] = j.objective end
  table.sort(other_objs)
  local all_ids = store:load_all_job_ids(sid)
  local loaded = store:load_jobs(all_ids)
  local n_loaded, uniq = 0, {}
  for id in pairs(loaded) do n_loaded = n_loaded + 1 end
  for _, id in ipairs(all_ids) do uniq[id] = true end
  local n_uniq = 0
  for _ in pairs(uniq) do n_uniq = n_uniq + 1 end
  local ok_bad = pcall(evaluator.create, run, "serial", { storage = store, search_id = "no-such-search" })
  report { sid_in = (function() for _, s in ipairs(store:load_all_search_ids()) do if s == sid then return true end end return false end)(),
    o1 = o1_ids, o2 = #o2, mine_id = mine[1].id, mine_n = #mine, other_objs = other_objs, cb = others_seen,
    n_ids = #all_ids, n_uniq = n_uniq, n_loaded = n_loaded, ok_bad = ok_bad, sid = sid }
end
]]):format(m.name), { np = m.np })
      local sid = t.sid
      assert.are.equal("string", type(sid))
      assert.is_true(t.sid_in)
      assert.are.same({ sid .. ".0", sid .. ".1", sid .. ".2" }, t.o1)
      assert.are.equal(0, t.o2, "the same jobs came back twice")
      assert.are.equal(1, t.mine_n)
      assert.are.same({ 4, 5 }, t.other_objs)
      assert.are.equal(5, t.cb, "on_done_other for each other job")
      assert.are.equal(6, t.n_ids, "the storage holds the 6 jobs of the search")
      assert.are.equal(6, t.n_loaded)
      assert.is_false(t.ok_bad, "an unknown search_id raises")
      assert.are.equal(sid .. ".3", t.mine_id, "job numbers follow the stored ones")
      assert.are.equal(6, t.n_uniq, "every job id of the search is different")
    end)
  end)
end

describe("closing", function()
  it("leaving the scope of a <close> variable ends the workers; create returns nil there and they go on", function()
    local r = H.ok(H.run([[
local closed = 0
do
  local ev <close> = evaluator.create(function(job) return job.parameters.x end, "mpicomm",
    { callbacks = { { on_close = function() closed = closed + 1 end } } })
  if ev then
    ev:submit({ { x = 1 }, { x = 2 } })
    ev:gather("ALL")
  end
end
report { rank = evaluator.mpi.rank(), closed = closed, t = evaluator.mpi.wtime() }
]], { np = 3, timeout = 30 }))
    local ranks = {}
    for _, t in ipairs(H.results(r)) do
      ranks[#ranks + 1] = t.rank
      assert.are.equal(t.rank == 0 and 1 or 0, t.closed, "on_close on the root only, once")
    end
    table.sort(ranks)
    assert.are.same({ 0, 1, 2 }, ranks)
  end)

  it("ev:close() ends the workers; closing twice is harmless; submit after close raises", function()
    local r = H.ok(H.run([[
local ev = evaluator.create(function(job) return 1 end, "mpicomm")
if ev then
  ev:submit({ { x = 1 } })
  ev:gather("ALL")
  ev:close()
  ev:close()
  local ok, err = pcall(ev.submit, ev, { { x = 2 } })
  report { rank = 0, ok = ok, err = tostring(err) }
else
  report { rank = evaluator.mpi.rank(), worker_done = true }
end
]], { np = 3, timeout = 30 }))
    local all = H.results(r)
    assert.are.equal(3, #all, H.describe(r))
    for _, t in ipairs(all) do
      if t.rank == 0 then
        assert.is_false(t.ok)
        assert.truthy(t.err:lower():find("closed", 1, true), t.err)
      else
        assert.is_true(t.worker_done)
      end
    end
  end)

  it("an evaluator the script leaves open is closed at the end: jobs still running finish, every rank exits 0", function()
    local r = H.run([[
local done = 0
local ev = evaluator.create(function(job) wait_s(0.3); return 1 end, "mpicomm",
  { callbacks = { { on_done = function() done = done + 1 end, on_close = function() io.write("@@CLOSED ", done, "\n") end } } })
if ev then ev:submit({ { x = 1 }, { x = 2 } }) end
]], { np = 3, timeout = 30 })
    assert.are.equal(0, r.code, H.describe(r))
    assert.truthy(r.stdout:find("@@CLOSED 2", 1, true), "the open evaluator was closed after its 2 jobs\n" .. H.describe(r))
  end)

  it("closing with jobs in flight (the default cancel_jobs_on_exit, wait_on_exit) returns quickly and exits 0", function()
    local r = H.run([[
local ev <close> = evaluator.create(function(job) wait_s(job.parameters.s); return 1 end, "mpicomm")
if ev then ev:submit({ { s = 0.1 }, { s = 0.1 } }); wait_s(0.5) end
report { rank = evaluator.mpi.rank() }
]], { np = 3, timeout = 30 })
    assert.are.equal(0, r.code, H.describe(r))
    assert.are.equal(3, #H.results(r))
    assert.is_true(r.elapsed < 15, ("took %.1f s"):format(r.elapsed))
  end)
end)

describe("the TCP path (mpirun --mca pml ob1 --mca btl tcp,self)", function()
  it("runs a search with large and exact values over TCP", function()
    local t = H.eval([[
local big = {}
for i = 1, 200000 do big[i] = string.char((i * 7) % 256) end
big = table.concat(big)
local ev <close> = evaluator.create(function(job)
  local p = job.parameters
  return { objective = #p.blob + p.i, metadata = { same = p.blob == big, back = p.blob, f = p.f } }
end, "mpicomm")
if ev then
  local list = {}
  for i = 1, 12 do list[i] = { i = i, blob = big, f = 0.1 * i } end
  ev:submit(list)
  local ok, ranks, n = true, {}, 0
  for _, j in ipairs(ev:gather("ALL")) do
    n = n + 1
    local p = j.parameters
    ok = ok and j.objective == #big + p.i and j.metadata.same and j.metadata.back == big and j.metadata.f == 0.1 * p.i
      and math.type(j.objective) == "integer"
    ranks[j.metadata.rank] = true
  end
  report { ok = ok, n = n, r1 = ranks[1] or false, r2 = ranks[2] or false }
end
]], { np = 3, mpi_args = { "--mca", "pml", "ob1", "--mca", "btl", "tcp,self" } })
    assert.are.same({ ok = true, n = 12, r1 = true, r2 = true }, t)
  end)
end)
