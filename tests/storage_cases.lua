-- tests/storage_cases.lua: what every shared storage must do, written once and run by
-- storage_spec.lua (SQLite) and redis_spec.lua (Redis). Each case takes store_for(dir), which
-- returns Lua source that makes the storage for a test directory (an absolute path for SQLite).
local H = require "helper"
local assert = require "luassert"

local C = {}

-- A new search in the storage; returns its id.
function C.new_search(dir, store)
  return H.result(H.run(("report { sid = (%s):create_new_search() }"):format(store), { dir = dir, timeout = 30 })).sid
end

-- The root's pid goes to root.pid; every job gather returns is written to returned.txt (flushed)
-- before the next submit; 8 jobs of arg[2] seconds each stay in flight until the run is killed.
local KILLED_SEARCH = [[
local store = %s
local busy = tonumber(arg[2])
local function run(job) local t = evaluator.mpi.wtime() + busy; while evaluator.mpi.wtime() < t do end; return job.parameters.i end
local ev <close> = evaluator.create(run, "mpicomm", { storage = store, search_id = arg[1] })
if ev then
  local f = io.open("/proc/self/stat"); local pid = f:read("a"):match("^(%%d+)"); f:close()
  f = io.open("root.pid", "w"); f:write(pid); f:close()
  local log = io.open("returned.txt", "a")
  local i = 0
  local function more(k) local l = {} for j = 1, k do i = i + 1; l[j] = { i = i, s = "p" .. i } end ev:submit(l) end
  more(8)
  while true do
    local done = ev:gather("BATCH", 1)
    for _, j in ipairs(done) do log:write(j.id, "\n") end
    log:flush()
    more(#done)
  end
end
]]

local RESUME = [[
local store = %s
local sid = arg[1]
local stored = {}
for id, j in pairs(store:load_jobs(store:load_all_job_ids(sid))) do
  stored[id] = j.status .. ":" .. tostring(j.objective == j.parameters.i and j.parameters.s == "p" .. j.parameters.i)
end
local ev <close> = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store, search_id = sid })
local unfinished, params, exact = {}, {}, true
for k, j in ipairs(ev:unfinished_jobs()) do
  unfinished[k] = j.id
  params[k] = j.parameters
  exact = exact and math.type(j.parameters.i) == "integer" and j.parameters.s == "p" .. j.parameters.i
end
ev:submit(params)
local resumed = {}
for k, j in ipairs(ev:gather("ALL")) do resumed[k] = j.id end
local ev2 <close> = evaluator.create(function(job) return 0 end, "serial", { storage = store, search_id = sid })
report { stored = stored, unfinished = unfinished, exact = exact, resumed = resumed,
  total = #store:load_all_job_ids(sid), again = #ev2:unfinished_jobs() }
]]

-- Runs fn(dir, store) in a new directory, removed afterwards whatever happens.
local function in_dir(store_for, fn)
  local dir = H.tmpdir()
  local ok, err = pcall(fn, dir, store_for(dir))
  H.rmdir(dir)
  assert(ok, err)
end

local function n_of(id) return tonumber(id:match("%.(%d+)$")) end

local function lines(dir, name) return select(2, (H.read_file(dir .. "/" .. name) or ""):gsub("\n", "")) end

--- kill -9 of the root rank mid-search: every job gather had returned is stored as done; the
--- jobs submitted and not finished are listed by unfinished_jobs (exactly once), and a resumed
--- search runs them with numbers that follow. opts (all optional): busy, each job's seconds
--- (0.01); min_unfinished (1; with no-op jobs a gather may return all 8 in flight, and the
--- submit after it is not written until the next gather); before_kill(dir, returned) once 40
--- jobs are returned; before_resume(dir), after(dir).
function C.kill_and_resume(store_for, opts)
  opts = opts or {}
  in_dir(store_for, function(dir, store)
    local sid = C.new_search(dir, store)
    local marker = "killed_" .. tostring({}):match("0x(%x+)") .. ".lua"
    H.write_file(dir .. "/" .. marker, H.PRELUDE .. KILLED_SEARCH:format(store))
    os.execute(("cd %s && (timeout -k 5 60 %s --oversubscribe -np 3 %s %s %s %s >a.out 2>&1 &)")
      :format(H.quote(dir), H.MPIRUN, H.quote(H.BIN), marker, H.quote(sid), opts.busy or 0.01))
    local enough = H.wait_until(function() return lines(dir, "returned.txt") >= 40 end, 40, 0.1)
    if enough and opts.before_kill then opts.before_kill(dir, lines(dir, "returned.txt")) end
    local pid = tonumber(H.read_file(dir .. "/root.pid") or "")
    if pid then os.execute("kill -9 " .. pid) end
    assert(enough and pid, "the search did not get going: " .. (H.read_file(dir .. "/a.out") or ""))
    assert(H.wait_until(function() return #H.pgrep(marker) == 0 end, 30, 0.1), "the killed run's ranks did not end")
    if opts.before_resume then opts.before_resume(dir) end
    local t = H.result(H.run(RESUME:format(store), { dir = dir, args = { sid }, timeout = 60 }))
    local returned = {}
    for id in (H.read_file(dir .. "/returned.txt") or ""):gmatch("[^\n]+") do
      returned[#returned + 1] = id
      assert.are.equal("DONE:true", t.stored[id], "job " .. id .. " was returned by gather but is not stored as done")
    end
    assert.is_true(#returned >= 40)
    -- every number up to the last one submitted is stored done or listed unfinished, never both
    local seen, top = {}, -1
    for id in pairs(t.stored) do seen[n_of(id)] = "stored"; top = math.max(top, n_of(id)) end
    for _, id in ipairs(t.unfinished) do
      assert.is_nil(seen[n_of(id)], id .. " is both stored and unfinished")
      seen[n_of(id)] = "unfinished"
      top = math.max(top, n_of(id))
    end
    for n = 0, top do assert.truthy(seen[n], ("job number %d is neither stored nor unfinished"):format(n)) end
    assert.is_true(#t.unfinished >= (opts.min_unfinished or 1) and #t.unfinished <= 8 + 2, "unfinished: " .. #t.unfinished)
    assert.is_true(t.exact, "unfinished jobs' parameters come back exactly")
    assert.are.equal(#t.unfinished, #t.resumed)
    for _, id in ipairs(t.resumed) do assert.is_true(n_of(id) > top, id .. " does not follow " .. top) end
    assert.are.equal(top + 1 - #t.unfinished + #t.resumed, t.total, "the finished jobs after the resume")
    assert.are.equal(0, t.again, "a later resume lists the resubmitted jobs again")
    if opts.after then opts.after(dir) end
  end)
end

-- Runs on the root of an evaluator sharing search arg[1]; reports its own ids and the others'
-- (gather's second value and on_done_other) once it has seen `want` of them, or after 30 s.
local SHARER = [[
local store = %s
local who, want = %s, %d
local comm = %s
local seen_cb = 0
local cb = { on_done_other = function() seen_cb = seen_cb + 1 end }
local ev <close> = evaluator.create(function(job) return job.parameters.k end, "mpicomm",
  { storage = store, search_id = arg[1], comm = comm, callbacks = { cb } })
if ev then
  local l = {}
  for k = 1, 4 do l[k] = { k = k, who = who } end
  ev:submit(l)
  local own, others = {}, {}
  local t_end = evaluator.mpi.wtime() + 30
  while (#others < want or #own < 4) and evaluator.mpi.wtime() < t_end do
    local done, other = ev:gather("BATCH", 1)
    for _, j in ipairs(done) do own[#own + 1] = j.id end
    for _, j in ipairs(other) do others[#others + 1] = j.id .. "=" .. tostring(j.parameters.who) end
    wait_s(0.02)
  end
  table.sort(own)
  table.sort(others)
  report { who = who, own = own, others = others, seen_cb = seen_cb }
end
]]

local function check_sharers(results, a, b)
  assert.are.equal(2, #results)
  local by = {}
  for _, t in ipairs(results) do by[t.who] = t end
  local all = {}
  for who, other in pairs({ [a] = b, [b] = a }) do
    local t = assert(by[who], "no report from " .. who)
    assert.are.equal(4, #t.own)
    assert.are.equal(4, #t.others, who .. " saw " .. table.concat(t.others, ","))
    assert.are.equal(4, t.seen_cb)
    for _, o in ipairs(t.others) do assert.truthy(o:find("=" .. other, 1, true), o) end
    for _, id in ipairs(t.own) do
      assert.is_nil(all[id], "job id " .. id .. " given twice")
      all[id] = true
    end
  end
  local theirs = {}
  for _, o in ipairs(by[a].others) do theirs[#theirs + 1] = o:match("^(.-)=") end
  assert.are.same(by[b].own, theirs)
end

--- Two evaluators on sub-communicators of one mpirun share a search.
function C.two_evaluators_one_mpirun(store_for)
  in_dir(store_for, function(dir, store)
    local sid = C.new_search(dir, store)
    local script = SHARER:format(store, "evaluator.mpi.rank() % 2 == 0 and 'even' or 'odd'", 4,
      "evaluator.mpi.COMM_WORLD:split(evaluator.mpi.rank() % 2, evaluator.mpi.rank())")
    local r = H.run(script, { dir = dir, np = 4, args = { sid }, timeout = 90 })
    H.ok(r)
    check_sharers(H.results(r), "even", "odd")
  end)
end

--- Two separate mpirun runs share a search.
function C.two_mpiruns(store_for)
  in_dir(store_for, function(dir, store)
    local sid = C.new_search(dir, store)
    local script = SHARER:format(store, "arg[2]", 4, "nil")
    local rs = H.run_parallel({ -- each run in a directory of its own; the storage is shared
      { script, { np = 2, args = { sid, "A" }, timeout = 90 } },
      { script, { np = 2, args = { sid, "B" }, timeout = 90 } },
    })
    local results = {}
    for _, r in ipairs(rs) do
      H.ok(r)
      for _, t in ipairs(H.results(r)) do results[#results + 1] = t end
    end
    check_sharers(results, "A", "B")
  end)
end

--- `evaluator-lua export` writes the rows dump_jobs_done_to_csv wrote for the same jobs.
function C.export_matches_dump(store_for, location)
  in_dir(store_for, function(dir, store)
    local t = H.result(H.run(([[
local ev <close> = evaluator.create(function(job)
  return { objective = job.parameters.x * 0.1, metadata = { note = "n" .. job.parameters.x } }
end, "serial", { storage = %s })
local l = {}
for i = 1, 25 do l[i] = { x = i, name = "a,\"b\"\n" .. i, t = { 1, 2.5 } } end
ev:submit(l)
ev:gather("ALL")
ev:dump_jobs_done_to_csv(".", "dumped.csv")
report { sid = ev.search_id }
]]):format(store), { dir = dir, timeout = 30 }))
    local r = H.run("", { dir = dir, script_arg = false, prelude = false, timeout = 30,
      bin_args = { "export", location, "--search-id", t.sid, "-o", "exported.csv" } })
    assert.are.equal(0, r.code, H.describe(r))
    local dumped, exported = H.read_csv(dir .. "/dumped.csv"), H.read_csv(dir .. "/exported.csv")
    assert.are.same(dumped[1], exported[1], "the same header")
    assert.are.equal(26, #exported)
    local key = function(row) return table.concat(row, "\1") end
    local want = {}
    for i = 2, #dumped do want[key(dumped[i])] = true end
    for i = 2, #exported do assert.is_true(want[key(exported[i])], "exported row not dumped: " .. key(exported[i])) end
    -- and again: an existing file is not overwritten
    r = H.run("", { dir = dir, script_arg = false, prelude = false, timeout = 30,
      bin_args = { "export", location, "--search-id", t.sid, "-o", "exported.csv" } })
    assert.are.equal(1, r.code, H.describe(r))
    assert.truthy(r.stderr:find("exported.csv exists", 1, true), H.describe(r))
  end)
end

--- Job numbers come in blocks: two evaluators of one process submitting in turn never get the
--- same number; a submit the core refuses uses no number; after close, a continued search's numbers
--- follow the last one used.
function C.numbers_in_blocks(store_for)
  in_dir(store_for, function(dir, store)
    local t = H.result(H.run(([[
local store = %s
local a = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store })
local b = evaluator.create(function(job) return job.parameters.i end, "serial", { storage = store, search_id = a.search_id })
local function list(n, tag) local l = {} for i = 1, n do l[i] = { i = i, tag = tag } end return l end
local refused = pcall(a.submit, a, { { f = print } })
a:submit(list(40, "a")); b:submit(list(40, "b")); a:submit(list(30, "a")); b:submit(list(3, "b"))
local ids = {}
for _, ev in ipairs({ a, b }) do for _, j in ipairs(ev:gather("ALL")) do ids[#ids + 1] = j.id end end
a:close(); b:close()
local c <close> = evaluator.create(function(job) return 0 end, "serial", { storage = store, search_id = a.search_id })
c:submit(list(2, "c"))
local later = {}
for _, j in ipairs(c:gather("ALL")) do later[#later + 1] = j.id end
report { refused = refused, ids = ids, later = later, stored = #store:load_all_job_ids(a.search_id) }
]]):format(store), { dir = dir, timeout = 60 }))
    assert.is_false(t.refused)
    assert.are.equal(113, #t.ids)
    local seen, low, top = {}, math.huge, -1
    for _, id in ipairs(t.ids) do
      assert.is_nil(seen[id], "job id " .. id .. " given twice")
      seen[id] = true
      low, top = math.min(low, n_of(id)), math.max(top, n_of(id))
    end
    assert.are.equal(0, low, "the refused submit used no number")
    assert.are.same({ top + 1, top + 2 }, { n_of(t.later[1]), n_of(t.later[2]) }, "the continued search's numbers follow")
    assert.are.equal(115, t.stored)
  end)
end

--- A job that runs long is in the storage as submitted while it runs (gather stores a submit's
--- jobs alone before it waits): another process lists it among the unfinished jobs.
function C.long_job_stored_while_it_runs(store_for)
  in_dir(store_for, function(dir, store)
    local sid = C.new_search(dir, store)
    local runner = ([[
local ev <close> = evaluator.create(function(job) wait_s(job.parameters.s); return 1 end, "mpicomm",
  { storage = %s, search_id = arg[1] })
if ev then
  ev:submit({ { s = 6 } })
  report { n = #ev:gather("ALL") }
end
]]):format(store)
    local watcher = ([[
local store = %s
local ev <close> = evaluator.create(function() return 0 end, "serial", { storage = store, search_id = arg[1] })
local seen, finished_first, t_end = {}, false, evaluator.mpi.wtime() + 40
while #seen == 0 and not finished_first and evaluator.mpi.wtime() < t_end do
  for _, j in ipairs(ev:unfinished_jobs()) do seen[#seen + 1] = j.id .. ":" .. tostring(j.parameters.s) end
  finished_first = #seen == 0 and #store:load_all_job_ids(arg[1]) > 0
  wait_s(0.1)
end
report { seen = seen, finished_first = finished_first }
]]):format(store)
    local rs = H.run_parallel({
      { runner, { np = 2, args = { sid }, timeout = 90 } },
      { watcher, { args = { sid }, timeout = 90 } },
    })
    for _, r in ipairs(rs) do H.ok(r) end
    assert.are.equal(1, H.result(rs[1]).n)
    local w = H.result(rs[2])
    assert.is_false(w.finished_first, "the job finished before any other process could see it submitted")
    assert.are.same({ sid .. ".0:6" }, w.seen)
  end)
end

--- The cases as busted tests (it: busted's), for the storage that store_for makes; location()
--- is how `evaluator-lua export` names it (a function: a server's port is known once it runs).
function C.its(it, store_for, location)
  it("kill -9 of the root mid-search, then resume: nothing gather returned is lost", function()
    C.kill_and_resume(store_for)
  end)
  it("two evaluators on sub-communicators of one mpirun share a search", function()
    C.two_evaluators_one_mpirun(store_for)
  end)
  it("two mpirun runs share a search", function()
    C.two_mpiruns(store_for)
  end)
  it("job numbers come in blocks: shared without repeats, none lost to a refused submit, following after close", function()
    C.numbers_in_blocks(store_for)
  end)
  it("a job that runs long is in the storage as submitted while it runs", function()
    C.long_job_stored_while_it_runs(store_for)
  end)
  it("evaluator-lua export writes the CSV that dump_jobs_done_to_csv wrote", function()
    C.export_matches_dump(store_for, location())
  end)
end

return C
