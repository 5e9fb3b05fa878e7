-- storage_record_spec.lua: the stored form of a finished job (a record: src/storage_job.c), in
-- SQLiteStorage and RedisStorage. A job read back (load_jobs, another evaluator's gather) is the
-- job that was stored, field for field, args the parameters table; a row stored before records
-- existed (a wire-encoded table) still loads; a damaged record is an error, never a shorter job.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"
local RS = require "redis_server"

-- Runs a job of every ending and reads them back twice: load_jobs, and a second evaluator on the
-- search (the others' jobs). Reports, for each way, the fields that differ from the job gathered.
local ROUND_TRIP = [==[
local store = %s
local function same(a, b, path, diff)
  if type(a) ~= type(b) or (type(a) == "number" and math.type(a) ~= math.type(b)) then
    diff[#diff + 1] = path .. ": " .. tostring(a) .. " / " .. tostring(b)
  elseif type(a) == "table" then
    for k, v in pairs(a) do same(v, b[k], path .. "." .. tostring(k), diff) end
    for k in pairs(b) do if a[k] == nil then diff[#diff + 1] = path .. "." .. tostring(k) .. ": extra" end end
  elseif a ~= b then
    diff[#diff + 1] = path .. ": " .. tostring(a) .. " / " .. tostring(b)
  end
  return diff
end
local function run(job)
  local p = job.parameters
  if p.i == 1 then return { objective = 1.5, metadata = { s = "a\0b", t = { 1, { x = "y" } }, timestamp_x = 2 } } end
  if p.i == 2 then return "F_fail" end
  if p.i == 3 then error("boom") end
  return { 1, 2.5, 3 }
end
local ev <close> = evaluator.create(run, "mpicomm", { storage = store })
if not ev then return end -- the worker rank
ev:submit { { i = 1, n = { 1, 2, { z = true } }, s = "" }, { i = 2, f = 0.1 }, { i = 3 }, { i = 4, [1] = "x" } }
local done = ev:gather("ALL")
local ids, byid = {}, {}
for k, j in ipairs(done) do ids[k], byid[j.id] = j.id, j end
local diff, args = {}, {}
for id, j in pairs(store:load_jobs(ids)) do
  same(byid[id], j, id, diff)
  args[#args + 1] = j.args == j.parameters
end
local ev2 <close> = evaluator.create(run, "serial", { storage = store, search_id = ev.search_id })
local others = ev2:gather_other_jobs_done()
for _, j in ipairs(others) do
  same(byid[j.id], j, "other " .. j.id, diff)
  args[#args + 1] = j.args == j.parameters
end
report { n = #done, loaded = #args - #others, others = #others, diff = diff, args = args }
]==]

local function check_round_trip(store)
  local t = H.result(H.run(ROUND_TRIP:format(store), { np = 2, timeout = 60 }))
  assert.are.equal(4, t.n)
  assert.are.equal(4, t.loaded)
  assert.are.equal(4, t.others)
  assert.are.same({}, t.diff)
  for _, same_table in ipairs(t.args) do assert.is_true(same_table, "args is not the parameters table") end
end

describe("stored jobs", function()
  it("SQLiteStorage: a job read back is the job gathered, args the parameters table", function()
    local dir = H.tmpdir()
    local ok, err = pcall(check_round_trip, ("evaluator.SQLiteStorage(%q)"):format(dir .. "/store.db"))
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("RedisStorage: a job read back is the job gathered, args the parameters table", function()
    local srv = RS.start {}
    local ok, err = pcall(check_round_trip, srv:lua())
    srv:stop()
    assert(ok, err)
  end)

  -- A row as the storage wrote it before records: the job table wire-encoded (src/wire.c), args
  -- a second copy of the parameters; then a record with its last byte cut, and one with a field
  -- code no version writes.
  local PY_ROWS = [[
import sqlite3, struct
def enc(v):
    if isinstance(v, bool): return b't' if v else b'f'
    if isinstance(v, int): return b'i' + struct.pack('<q', v)
    if isinstance(v, float): return b'd' + struct.pack('<d', v)
    if isinstance(v, str): return b's' + struct.pack('<I', len(v)) + v.encode()
    return b'T' + struct.pack('<II', 0, len(v)) + b''.join(enc(k) + enc(x) for k, x in v.items())
db = sqlite3.connect('store.db')
sid = int(db.execute('SELECT max(id) FROM searches').fetchone()[0])
old = {'id': '%d.7' % (sid - 1), 'parameters': {'x': 2}, 'args': {'x': 2}, 'status': 'DONE', 'objective': 0.5,
       'metadata': {'timestamp_submit': 1.0, 'rank': 1, 'note': 'old'}}
rec = db.execute('SELECT data FROM jobs WHERE search = ? AND n = 0', (sid,)).fetchone()[0]
db.execute('INSERT INTO jobs (search, n, writer, data) VALUES (?, 7, ?, ?)', (sid, 'old', enc(old)))
db.execute('INSERT INTO jobs (search, n, writer, data) VALUES (?, 8, ?, ?)', (sid, 'old', rec[:-1]))
db.execute('INSERT INTO jobs (search, n, writer, data) VALUES (?, 9, ?, ?)', (sid, 'old', rec[:1] + bytes([200]) + rec[2:]))
db.commit()
print(rec[:1].decode())
]]

  it("SQLiteStorage: a row stored before records loads; a damaged record is an error", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local sid = H.result(H.run([[
local ev <close> = evaluator.create(function(job) return job.parameters.x end, "serial", { storage = evaluator.SQLiteStorage("store.db") })
ev:submit { { x = 1 } }
ev:gather("ALL")
report { sid = ev.search_id }
]], { dir = dir })).sid
      local py = io.popen(("cd %s && python3 -c %s 2>&1"):format(H.quote(dir), H.quote(PY_ROWS)))
      local out = py:read("a")
      py:close()
      assert.are.equal("J\n", out, "the first job's row is a record")
      local t = H.result(H.run(([[
local store, sid = evaluator.SQLiteStorage("store.db"), %q
local old = store:load_jobs({ sid .. ".7" })[sid .. ".7"]
local function try(n)
  local ok, e = pcall(store.load_jobs, store, { sid .. "." .. n })
  return ok and "loaded" or tostring(e)
end
report { id = old.id, x = old.parameters.x, args_x = old.args.x, status = old.status, objective = old.objective,
  rank = old.metadata.rank, note = old.metadata.note, cut = try(8), bad_code = try(9) }
]]):format(sid), { dir = dir }))
      assert.are.same({ id = sid .. ".7", x = 2, args_x = 2, status = "DONE", objective = 0.5, rank = 1, note = "old" },
        { id = t.id, x = t.x, args_x = t.args_x, status = t.status, objective = t.objective, rank = t.rank, note = t.note })
      for _, e in ipairs({ t.cut, t.bad_code }) do
        assert.truthy(e:find("store.db", 1, true) and e:find("damaged", 1, true), e)
      end
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)
end)
