-- jobs_spec.lua: submit and gather, job tables (ids, status, timestamps, rank), counters, the job
-- limit, what run functions return, run_function_kwargs and callbacks; for every method of H.METHODS.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

local on_root = H.on_root

for _, m in ipairs(H.METHODS) do
  describe(("jobs with method %q on %d rank(s)"):format(m.name, m.np), function()
    it("gather ALL returns every job once: ids <search_id>.<n>, status, parameters, output, counters", function()
      local t = on_root(m, "function(job) return job.parameters.x * 10 end", nil, [[
local list = {}
for i = 1, 5 do list[i] = { x = i, name = "p" .. i } end
local before = ev.num_jobs_submitted
ev:submit(list)
local after_submit, gathered_before = ev.num_jobs_submitted, ev.num_jobs_gathered
local done, others = ev:gather("ALL")
local jobs, prefixes = {}, {}
for _, j in ipairs(done) do
  local prefix, n = j.id:match("^(.+)%.(%d+)$")
  prefixes[prefix or "?"] = true
  jobs[#jobs + 1] = { n = tonumber(n), idt = type(j.id), status = j.status, x = j.parameters.x, name = j.parameters.name,
    args_same = rawequal(j.args, j.parameters), out = j.output, obj = j.objective, objt = math.type(j.objective) }
end
table.sort(jobs, function(a, b) return a.n < b.n end)
local np = 0
for _ in pairs(prefixes) do np = np + 1 end
report { jobs = jobs, prefixes = np, before = before, after_submit = after_submit, gathered_before = gathered_before,
  submitted = ev.num_jobs_submitted, gathered = ev.num_jobs_gathered, sub_t = math.type(ev.num_jobs_submitted),
  others_t = type(others), others_n = type(others) == "table" and #others or -1 }
]])
      assert.are.equal(5, #t.jobs)
      for i, j in ipairs(t.jobs) do
        assert.are.same({ n = i - 1, idt = "string", status = "DONE", x = i, name = "p" .. i, args_same = true,
          out = i * 10, obj = i * 10, objt = "integer" }, j)
      end
      assert.are.equal(1, t.prefixes)
      assert.are.same({ 0, 5, 0, 5, 5, "integer" }, { t.before, t.after_submit, t.gathered_before, t.submitted, t.gathered, t.sub_t })
      assert.are.same({ "table", 0 }, { t.others_t, t.others_n })
    end)

    it("jobs carry the four timestamps in order and the rank that ran them", function()
      local t = on_root(m, "function(job) wait_s(0.1); return evaluator.mpi.rank() end", nil, [[
local list = {}
for i = 1, 6 do list[i] = { i = i } end
ev:submit(list)
local rows = {}
for _, j in ipairs(ev:gather("ALL")) do
  local md = j.metadata
  rows[#rows + 1] = { s = md.timestamp_submit, b = md.timestamp_start, e = md.timestamp_end, g = md.timestamp_gather,
    rank = md.rank, rank_t = math.type(md.rank), ran_on = j.objective }
end
report { rows = rows }
]])
      assert.are.equal(6, #t.rows)
      local ranks = {}
      for _, r in ipairs(t.rows) do
        for _, k in ipairs({ "s", "b", "e", "g" }) do assert.are.equal("number", type(r[k]), k .. " missing") end
        assert.is_true(r.s >= 0 and r.s <= r.b and r.b <= r.e and r.e <= r.g, ("not in order: %s %s %s %s"):format(r.s, r.b, r.e, r.g))
        assert.is_true(r.e - r.b >= 0.09, "the job waited 0.1 s, end - start = " .. (r.e - r.b))
        assert.is_true(r.g < 30, "seconds since the evaluator was created: " .. r.g)
        assert.are.equal("integer", r.rank_t)
        if m.rank == "mpi" then assert.are.equal(r.ran_on, r.rank, "metadata.rank is the rank that ran the job") end
        if m.rank == "index" then assert.is_true(r.rank >= 1 and r.rank <= m.workers, "worker index " .. r.rank) end
        if m.remote then assert.are_not.equal(0, r.rank, "the root ran a job") end
        ranks[r.rank] = true
      end
      if m.remote then
        for w = 1, m.np - 1 do assert.is_true(ranks[w], "worker rank " .. w .. " ran no job") end
      end
    end)

    it("gather BATCH returns at least size jobs (all that are done), every job exactly once in all", function()
      local t = on_root(m, "function(job) wait_s(job.parameters.s); return job.parameters.i end", nil, [[
local list = {}
for i = 1, 7 do list[i] = { i = i, s = 0.05 * (i % 3) } end
ev:submit(list)
local seen, sizes, bad = {}, {}, {}
local want = { 1, 2, 3 }
local k = 0
while ev.num_jobs_gathered < 7 do
  k = k + 1
  local size = want[(k - 1) % 3 + 1]
  local outstanding = 7 - ev.num_jobs_gathered
  local done = ev:gather("BATCH", size)
  if #done < math.min(size, outstanding) then bad[#bad + 1] = ("asked %d, got %d"):format(size, #done) end
  sizes[#sizes + 1] = #done
  for _, j in ipairs(done) do seen[j.objective] = (seen[j.objective] or 0) + 1 end
  if k > 20 then break end
end
local counts = {}
for i = 1, 7 do counts[i] = seen[i] or 0 end
-- all that are done: with jobs already finished, BATCH 1 brings back more than one of them
local quick = {}
for i = 1, ev.num_workers do quick[i] = { i = 100 + i, s = 0 } end
ev:submit(quick)
wait_s(1.0)
local n_quick = #ev:gather("BATCH", 1)
local rest = #ev:gather("ALL")
local _, others = ev:gather("BATCH")
report { counts = counts, bad = bad, n_quick = n_quick, rest = rest, others_t = type(others), gathered = ev.num_jobs_gathered }
]])
      assert.are.same({ 1, 1, 1, 1, 1, 1, 1 }, t.counts)
      assert.are.same({}, t.bad)
      if m.remote then
        assert.are.equal(m.workers, t.n_quick, "every done job comes back with BATCH 1")
      else
        assert.is_true(t.n_quick >= 1)
      end
      assert.are.equal(m.workers, t.n_quick + t.rest)
      assert.are.equal("table", t.others_t)
      assert.are.equal(7 + m.workers, t.gathered)
    end)

    it("gather with nothing submitted returns an empty list at once; other types are Unsupported", function()
      local t = on_root(m, "function() return 0 end", nil, [[
local a = ev:gather("ALL")
local b = ev:gather("BATCH", 1)
local ok, err = pcall(ev.gather, ev, "SOME")
report { a = #a, b = #b, ok = ok, err = tostring(err) }
]], { timeout = 30 })
      assert.are.same({ 0, 0, false }, { t.a, t.b, t.ok })
      assert.truthy(t.err:find("Unsupported gather operation", 1, true), t.err)
    end)

    it("set_maximum_num_jobs_submitted: submit past n raises MaximumJobsSpawnReached", function()
      local t = on_root(m, "function(job) return job.parameters.i end", nil, [[
ev:set_maximum_num_jobs_submitted(3)
ev:submit({ { i = 1 }, { i = 2 } })
local ok1 = pcall(ev.submit, ev, { { i = 3 } })
local ok2, err = pcall(ev.submit, ev, { { i = 4 }, { i = 5 } })
local ok3, err3 = pcall(ev.submit, ev, { { i = 6 } })
local done = ev:gather("ALL")
local ids = {}
for _, j in ipairs(done) do ids[#ids + 1] = j.objective end
table.sort(ids)
report { ok1 = ok1, ok2 = ok2, err = tostring(err), ok3 = ok3, err3 = tostring(err3), submitted = ev.num_jobs_submitted, ran = ids }
]])
      assert.is_true(t.ok1)
      assert.is_false(t.ok2)
      assert.truthy(t.err:find("MaximumJobsSpawnReached", 1, true), t.err)
      assert.is_false(t.ok3)
      assert.truthy(t.err3:find("MaximumJobsSpawnReached", 1, true), t.err3)
      assert.are.equal(3, t.submitted)
      assert.are.same({ 1, 2, 3 }, t.ran)
    end)

    it("turns what the run function returns into objective, output and metadata", function()
      local run = [[function(job)
  local k = job.parameters.k
  if k == "int" then return 7
  elseif k == "float" then return 2.5
  elseif k == "fail" then return "F_my_failure"
  elseif k == "dict" then return { objective = -1.25, metadata = { note = "hello", count = 3 } }
  elseif k == "dictlist" then return { objective = { 1, 2.5 }, metadata = { a = true } }
  elseif k == "multi" then return { 1.5, -2, 3 }
  elseif k == "nan" then return 0/0
  elseif k == "inf" then return math.huge
  elseif k == "ninf" then return -math.huge
  elseif k == "dictnan" then return { objective = 0/0 }
  elseif k == "multinan" then return { 1, 0/0 }
  end
end]]
      local t = on_root(m, run, nil, [[
local kinds = { "int", "float", "fail", "dict", "dictlist", "multi", "nan", "inf", "ninf", "dictnan", "multinan" }
local list = {}
for i, k in ipairs(kinds) do list[i] = { k = k } end
ev:submit(list)
local out = {}
for _, j in ipairs(ev:gather("ALL")) do
  local o = j.objective
  out[j.parameters.k] = { obj = type(o) == "number" and ("%s:%.17g"):format(math.type(o), o)
      or type(o) == "table" and table.concat((function() local s = {} for i, v in ipairs(o) do s[i] = ("%s:%.17g"):format(math.type(v), v) end return s end)(), ",")
      or o,
    status = j.status, note = j.metadata.note, count = j.metadata.count, a = j.metadata.a,
    has_ts = j.metadata.timestamp_end ~= nil, out_t = type(j.output) }
end
report(out)
]])
      local function is(k, obj, extra)
        local want = { obj = obj, status = "DONE", has_ts = true }
        for key, v in pairs(extra or {}) do want[key] = v end
        local got = t[k]
        assert.is_table(got, k .. " missing")
        got.out_t = nil
        assert.are.same(want, got, k)
      end
      is("int", "integer:7")
      is("float", "float:2.5")
      is("fail", "F_my_failure")
      is("dict", "float:-1.25", { note = "hello", count = 3 })
      is("dictlist", "integer:1,float:2.5", { a = true })
      is("multi", "float:1.5,integer:-2,integer:3")
      for _, k in ipairs({ "nan", "inf", "ninf", "dictnan", "multinan" }) do is(k, "F") end
    end)

    it("a Lua error in the run function: objective F, metadata.error with message and traceback, the search goes on", function()
      local run = [[function(job)
  local function inner(x)
    if x == 2 then error("kaboom-" .. x) end
    if x == 3 then error({ code = 3 }) end
    return x
  end
  local v = inner(job.parameters.x) -- not a tail call: the traceback shows inner
  return v
end]]
      local t = on_root(m, run, nil, [[
ev:submit({ { x = 1 }, { x = 2 }, { x = 3 } })
local out = {}
for _, j in ipairs(ev:gather("ALL")) do
  out[j.parameters.x] = { obj = j.objective, status = j.status, err = j.metadata.error, errt = type(j.metadata.error) }
end
ev:submit({ { x = 4 } })
local after = ev:gather("ALL")[1]
report { out = out, after = after.objective }
]])
      assert.are.same({ obj = 1, status = "DONE", errt = "nil" }, t.out[1])
      local e = t.out[2]
      assert.are.equal("F", e.obj)
      assert.are.equal("DONE", e.status)
      assert.are.equal("string", e.errt)
      assert.truthy(e.err:find("kaboom-2", 1, true), e.err)
      assert.truthy(e.err:find("stack traceback", 1, true), e.err)
      -- line 1 is the prelude, 2 "local METHOD", 3 the create call, 5 the error call
      assert.truthy(e.err:find("script.lua:5:", 1, true), "the traceback names the line: " .. e.err)
      assert.truthy(e.err:find("inner", 1, true), "the traceback names the function: " .. e.err)
      assert.are.equal("F", t.out[3].obj)
      assert.are.equal("string", t.out[3].errt)
      assert.are.equal(4, t.after)
    end)

    it("passes run_function_kwargs as the second argument, exactly", function()
      local t = on_root(m, [[function(job, kw)
  return { objective = job.parameters.x * kw.scale, metadata = { tag = kw.tag, deep = kw.nested.list[2], it = math.type(kw.scale) } }
end]], "{ run_function_kwargs = { scale = 3, tag = 'T\\0x', nested = { list = { 'a', 'b' } } } }", [[
ev:submit({ { x = 2 }, { x = 5 } })
local res = {}
for _, j in ipairs(ev:gather("ALL")) do
  res[j.parameters.x] = { obj = j.objective, tag_ok = j.metadata.tag == "T\0x", deep = j.metadata.deep, it = j.metadata.it }
end
report(res)
]])
      assert.are.same({ obj = 6, tag_ok = true, deep = "b", it = "integer" }, t[2])
      assert.are.same({ obj = 15, tag_ok = true, deep = "b", it = "integer" }, t[5])
    end)

    it("calls on_launch, on_done, on_gather and on_close with colon syntax on the root", function()
      local r = H.ok(H.run(([[
local log = {}
local function cb(name)
  local c = { name = name }
  function c:on_launch(job) log[#log + 1] = { self_ok = rawequal(self, c), ev = "launch", cb = self.name, id = job.id } end
  function c:on_done(job) log[#log + 1] = { self_ok = rawequal(self, c), ev = "done", cb = self.name, id = job.id, obj = job.objective } end
  function c:on_gather(l, o) log[#log + 1] = { self_ok = rawequal(self, c), ev = "gather", cb = self.name, n = #l, on = #o } end
  function c:on_close() log[#log + 1] = { self_ok = rawequal(self, c), ev = "close", cb = self.name, rank = evaluator.mpi.rank() } end
  return c
end
do
  local ev <close> = evaluator.create(function(job) return job.parameters.x end, %q, { callbacks = { cb("A"), cb("B") } })
  if ev then
    ev:submit({ { x = 1 }, { x = 2 } })
    ev:gather("ALL")
  end
end
if evaluator.mpi.rank() == 0 then report { log = log } else report { worker_log = #log } end
]]):format(m.name), { np = m.np }))
      local log
      for _, res in ipairs(H.results(r)) do
        if res.log then log = res.log else assert.are.equal(0, res.worker_log, "callbacks ran on a worker") end
      end
      assert.is_table(log, H.describe(r))
      local count, ids, launched = {}, {}, {}
      for i, e in ipairs(log) do
        assert.is_true(e.self_ok, "callback " .. i .. " got its own table as self")
        local key = e.ev .. e.cb
        count[key] = (count[key] or 0) + 1
        if e.ev == "launch" then launched[e.cb .. e.id] = true end
        if e.ev == "done" then
          assert.is_true(launched[e.cb .. e.id], "on_done before on_launch for " .. e.id)
          ids[e.id] = e.obj
        end
        if e.ev == "gather" then assert.are.same({ 2, 0 }, { e.n, e.on }) end
        if e.ev == "close" then assert.are.equal(0, e.rank); assert.are.equal(#log - (e.cb == "A" and 1 or 0), i) end
      end
      assert.are.same({ launchA = 2, launchB = 2, doneA = 2, doneB = 2, gatherA = 1, gatherB = 1, closeA = 1, closeB = 1 }, count)
      local objs = {}
      for _, o in pairs(ids) do objs[#objs + 1] = o end
      table.sort(objs)
      assert.are.same({ 1, 2 }, objs)
    end)
  end)
end
