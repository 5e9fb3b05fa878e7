-- redis_spec.lua: evaluator.RedisStorage{host=, port=, password=, db=} against real redis-server
-- processes started for the spec (tests/redis_server.lua), with and without requirepass: the API
-- and exact values, the password kept secret, a server that is down or goes away, kill -9 then
-- resume, evaluators sharing a search, export from a redis:// URL.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"
local C = require "storage_cases"
local RS = require "redis_server"

local PASSWORD = "pw-Zq7 s3cret"

describe("RedisStorage", function()
  local srv
  setup(function() srv = RS.start { password = PASSWORD } end)
  teardown(function() if srv then srv:stop() end end)
  local function STORE() return srv:lua() end

  it("the storage API with a password: values come back exactly; the password is never printed", function()
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local r = H.run(([==[
local store = %s
local s1, s2 = store:create_new_search(), store:create_new_search()
local ev <close> = evaluator.create(function(job)
  return { objective = job.parameters.i, metadata = { s = "a\0b\255", big = math.maxinteger, f = 0.1, t = { 1, { x = "y" } } } }
end, "serial", { storage = store, search_id = s2 })
ev:submit({ { i = 7, s = "p\0q", f = 1 / 3, nested = { k = { 1, 2, 3 } } }, { i = 2.5 } })
ev:gather("ALL")
ev:dump_jobs_done_to_csv(".", "out.csv")
local ids = store:load_all_job_ids(s2)
local jobs = store:load_jobs(ids)
local j = jobs[s2 .. ".0"]
local function err(f) local ok, e = pcall(f) return ok and "no error" or tostring(e) end
report {
  distinct = s1 ~= s2, ids = ids, has = store:has_search(s2), none = store:has_search("nope"),
  all = store:load_all_search_ids(),
  exact = j.parameters.s == "p\0q" and j.parameters.f == 1 / 3 and math.type(j.parameters.i) == "integer"
    and j.parameters.nested.k[3] == 3 and j.metadata.s == "a\0b\255" and j.metadata.big == math.maxinteger
    and j.metadata.f == 0.1 and j.metadata.t[2].x == "y" and j.objective == 7,
  float = math.type(jobs[s2 .. ".1"].parameters.i),
  nopass = err(function() local s = evaluator.RedisStorage { port = %d }; s:create_new_search() end),
  wrong = err(function() local s = evaluator.RedisStorage { port = %d, password = "wrong-one" } end),
  unknown = err(function() local s = evaluator.create(function() return 1 end, "serial", { storage = store, search_id = "12345" }) end),
  tostring = tostring(store),
}
]==]):format(STORE(), srv.port, srv.port), { dir = dir, timeout = 30 })
      local t = H.result(r)
      assert.is_true(t.distinct)
      assert.is_true(t.has)
      assert.is_false(t.none)
      assert.is_true(t.exact)
      assert.are.equal("float", t.float)
      assert.are.equal(2, #t.ids)
      assert.is_true(#t.all >= 2)
      assert.truthy(t.nopass:find("NOAUTH", 1, true) or t.nopass:lower():find("auth", 1, true), t.nopass)
      assert.truthy(t.wrong:find("refused the password", 1, true), t.wrong)
      assert.truthy(t.wrong:find("script.lua:", 1, true), "the error names the user's line: " .. t.wrong)
      assert.truthy(t.unknown:find("12345", 1, true), t.unknown)
      for _, text in ipairs({ r.stdout, r.stderr, H.read_file(dir .. "/out.csv") or "", t.nopass, t.wrong, t.unknown, t.tostring }) do
        assert.falsy(text:find(PASSWORD, 1, true), "the password was printed or written: " .. text)
      end
    end)
    H.rmdir(dir)
    assert(ok, err)
  end)

  it("a server that is down at create: a clear error naming it", function()
    local down = RS.start()
    local port = down.port
    down:stop()
    local t = H.eval(([[
local ok, err = pcall(function() local s = evaluator.RedisStorage { port = %d }; return s end)
report { ok = ok, err = tostring(err) }
]]):format(port), { timeout = 30 })
    assert.is_false(t.ok)
    assert.truthy(t.err:find("127.0.0.1:" .. port, 1, true) and t.err:find("cannot connect", 1, true), t.err)
  end)

  it("a server that goes away mid-search: gather raises and says so; the next gather, once it is back, stores and returns the jobs", function()
    local back = RS.start { persist = true }
    local dir = H.tmpdir()
    local ok, err = pcall(function()
      local t = H.result(H.run(([[
local store = evaluator.RedisStorage { port = %d, timeout = 2 }
local calls = 0
local ev <close> = evaluator.create(function(job) return job.parameters.i end, "serial",
  { storage = store, callbacks = { on_done = function() calls = calls + 1 end } })
ev:submit({ { i = 1 }, { i = 2 } })
os.execute("kill -9 $(cat %s/redis.pid)")
wait_s(0.3)
local ok, err = pcall(ev.gather, ev, "ALL")
local kept, calls_then = #ev.jobs_done, calls
os.execute(%q)
local again = ev:gather("ALL")
local ids = {}
for i, j in ipairs(again) do ids[i] = j.id end
report { ok = ok, err = tostring(err), kept = kept, calls_then = calls_then, ids = ids, calls = calls,
  stored = #store:load_all_job_ids(ev.search_id) }
]]):format(back.port, back.dir, ("redis-server --port %d --bind 127.0.0.1 --daemonize yes --dir %s --pidfile %s/redis.pid --appendonly yes --save '' && sleep 1")
        :format(back.port, back.dir, back.dir)), { dir = dir, timeout = 60 }))
      assert.is_false(t.ok)
      assert.truthy(t.err:find("does not answer", 1, true) or t.err:find("cannot connect", 1, true), t.err)
      assert.truthy(t.err:find("not stored yet", 1, true), t.err)
      assert.are.equal(2, t.kept)
      assert.are.equal(0, t.calls_then)
      assert.are.equal(2, #t.ids)
      assert.are.equal(2, t.calls)
      assert.are.equal(2, t.stored)
    end)
    H.rmdir(dir)
    back:stop()
    assert(ok, err)
  end)

  C.its(it, STORE, function() return ("redis://:%s@127.0.0.1:%d/0"):format(PASSWORD, srv.port) end)
end)
