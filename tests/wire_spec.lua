-- wire_spec.lua: values cross exactly between the driver and the jobs (and between ranks for
-- mpicomm): parameters to the run function, outputs and metadata back; values that cannot cross.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

-- Lua source shared by every rank of a script: catalog() builds the same values everywhere, and
-- diff(a, b) lists where b is not exactly a (type, integer/float subtype, float bits, NaN-ness,
-- bytes of strings, keys of tables with their own types).
local CATALOG = [==[
local function catalog()
  local deep = { leaf = 0.1 }
  for i = 1, 100 do deep = { d = deep, i = i } end
  return {
    imax = math.maxinteger, imin = math.mininteger, izero = 0, ineg = -42, i53 = (1 << 53) + 1,
    f01 = 0.1, fnegzero = -0.0, fposzero = 0.0, fdenorm = 1e-310, ftiny = 4.9e-324, fmax = 1.7976931348623157e308,
    fthird = 1 / 3, ftwo = 2.0, fbig = 2.0 ^ 63, fhuge = math.huge, fnhuge = -math.huge, fnan = 0 / 0,
    s_nul = "a\0b\0", s_only_nul = "\0", s_bad_utf8 = "\255\254\192\128\237\160\128", s_empty = "",
    s_utf8 = "h\u{e9}llo \u{1F600}", s_long = string.rep("xy\0z", 20000),
    b_true = true, b_false = false,
    list = { 1, 2.0, "3", { 4 }, false },
    mixed = { 10, 20.5, "thirty", [10] = "ten", [-1] = "minus one", [0] = "zero", [1.5] = "one and a half",
      [math.maxinteger] = "max key", [-0.25] = "float key", ["1"] = "string one", s = { t = { u = { 0.1, -0.0 } } } },
    empty = {},
    deep = deep,
    nulls = { 1, evaluator.null, 3, { n = evaluator.null } },
  }
end

local function keystr(k)
  return type(k) == "number" and ("[%s %.17g]"):format(math.type(k), k) or ("[%s]"):format(tostring(k))
end

local function diff(a, b, path, out)
  path, out = path or "", out or {}
  if type(a) ~= type(b) then
    out[#out + 1] = ("%s: %s became %s"):format(path, type(a), type(b))
  elseif type(a) == "number" then
    if math.type(a) ~= math.type(b) then
      out[#out + 1] = ("%s: %s became %s"):format(path, math.type(a), math.type(b))
    elseif math.type(a) == "float" then
      if a ~= a then
        if b == b then out[#out + 1] = path .. ": NaN became " .. tostring(b) end
      elseif string.pack("<d", a) ~= string.pack("<d", b) then
        out[#out + 1] = ("%s: %.17g became %.17g"):format(path, a, b)
      end
    elseif a ~= b then
      out[#out + 1] = ("%s: %d became %d"):format(path, a, b)
    end
  elseif type(a) == "table" then
    for k, v in pairs(a) do
      local kb = rawget(b, k)
      if kb == nil then out[#out + 1] = path .. keystr(k) .. ": missing"
      else diff(v, kb, path .. keystr(k), out) end
    end
    for k in pairs(b) do
      if rawget(a, k) == nil then out[#out + 1] = path .. keystr(k) .. ": extra key" end
    end
    -- the subtype of number keys: 1.5 must stay a float key, 10 an integer key
    for k in pairs(b) do
      if type(k) == "number" and rawget(a, k) ~= nil then
        local found = false
        for ka in pairs(a) do if rawequal(ka, k) and math.type(ka) == math.type(k) then found = true end end
        if not found then out[#out + 1] = path .. keystr(k) .. ": key subtype changed" end
      end
    end
  elseif a ~= b then
    out[#out + 1] = ("%s: %q became %q"):format(path, tostring(a):sub(1, 40), tostring(b):sub(1, 40))
  end
  return out
end
]==]

local outcomes = {}

-- One run per method: the worker checks the parameters it got, returns them (and a fresh catalog)
-- as output and metadata, and the root checks what came back.
local function outcome(m)
  if outcomes[m.name] then return outcomes[m.name] end
  local src = CATALOG .. ([[
local ev <close> = evaluator.create(function(job)
  local wrong = diff(catalog(), job.parameters.v)
  return { objective = 0, echo = job.parameters.v, fresh = catalog(), wrong = table.concat(wrong, "; "),
    metadata = { vals = catalog(), imax = math.maxinteger, f01 = 0.1, s_nul = "a\0b\0", fnegzero = -0.0 } }
end, %q)
if ev then
  local sent = catalog()
  ev:submit({ { v = sent } })
  local j = ev:gather("ALL")[1]
  local md = j.metadata
  report {
    objective = j.objective, error = md.error,
    at_worker = j.output.wrong,
    echo = table.concat(diff(catalog(), j.output.echo), "; "),
    fresh = table.concat(diff(catalog(), j.output.fresh), "; "),
    meta = table.concat(diff(catalog(), md.vals), "; "),
    meta_scalars = table.concat(diff({ math.maxinteger, 0.1, "a\0b\0", -0.0 }, { md.imax, md.f01, md.s_nul, md.fnegzero }), "; "),
    params_kept = table.concat(diff(catalog(), j.parameters.v), "; "),
  }
end
]]):format(m.name)
  outcomes[m.name] = H.eval(src, { np = m.np })
  return outcomes[m.name]
end

for _, m in ipairs(H.METHODS) do
  describe(("values cross exactly with method %q on %d rank(s)"):format(m.name, m.np), function()
    it("the job ran without error", function()
      local t = outcome(m)
      assert.are.equal(0, t.objective, tostring(t.error))
    end)

    it("parameters reach the run function exactly (integers, float bits, NaN, bytes, nested and mixed keys)", function()
      assert.are.equal("", outcome(m).at_worker)
    end)

    it("outputs come back exactly: the parameters echoed and values made by the run function", function()
      local t = outcome(m)
      assert.are.equal("", t.echo)
      assert.are.equal("", t.fresh)
    end)

    it("metadata comes back exactly", function()
      local t = outcome(m)
      assert.are.equal("", t.meta)
      assert.are.equal("", t.meta_scalars)
    end)

    it("the job's parameters on the root are what was submitted", function()
      assert.are.equal("", outcome(m).params_kept)
    end)

    it("a function, userdata, coroutine or cyclic table in submit: an error naming the key, nothing submitted", function()
      local t = H.eval(([[
local ev <close> = evaluator.create(function(job) return job.parameters.ok end, %q)
if ev then
  local cyc = {}
  cyc.self_ref = cyc
  local cases = {
    { "bad_fn", { { ok = 1 }, { ok = 2, bad_fn = function() end } } },
    { "bad_ud", { { ok = 1 }, { bad_ud = io.stdout } } },
    { "bad_co", { { ok = 1 }, { nest = { deeper = { bad_co = coroutine.create(function() end) } } } } },
    { "self_ref", { { ok = 1 }, { ok = 2 }, { cyc_top = cyc } } },
    { "bad_in_list", { { ok = 1 }, { list = { 1, 2, { bad_in_list = print } } } } },
  }
  local res = {}
  for _, c in ipairs(cases) do
    local before = ev.num_jobs_submitted
    local ok, err = pcall(ev.submit, ev, c[2])
    res[#res + 1] = { key = c[1], ok = ok, err = tostring(err), delta = ev.num_jobs_submitted - before }
  end
  local none = ev:gather("ALL")
  ev:submit({ { ok = 7 } })
  local j = ev:gather("ALL")[1]
  report { res = res, gathered_none = #none, next_id = j.id:match("%%.(%%d+)$"), next_obj = j.objective }
end
]]):format(m.name), { np = m.np })
      for _, c in ipairs(t.res) do
        assert.is_false(c.ok, c.key .. " was accepted")
        assert.truthy(c.err:find(c.key, 1, true), ("the error names %s: %s"):format(c.key, c.err))
        assert.are.equal(0, c.delta, c.key .. ": part of the call was submitted")
      end
      assert.are.equal(5, #t.res)
      assert.are.equal(0, t.gathered_none, "jobs from refused submits came back")
      assert.are.equal("0", t.next_id, "the first job submitted is number 0")
      assert.are.equal(7, t.next_obj)
    end)

    if m.crosses then
      it("tables nest up to 200 levels both ways; 201 are refused with the key path's ends", function()
        local t = H.eval(([[
local function nest(levels) local t = { leaf = levels }; for _ = 2, levels do t = { n = t } end; return t end
local function depth(t) local d = 0; while type(t) == "table" do d = d + 1; t = t.n or t.leaf end; return d end
local ev <close> = evaluator.create(function(job)
  if job.parameters.back then return { objective = depth(job.parameters.deep), out = nest(job.parameters.back) } end
  return depth(job.parameters.deep)
end, %q)
if ev then
  ev:submit({ { deep = nest(199) } })
  local ok, err = pcall(ev.submit, ev, { { deep = nest(200) } })
  ev:submit({ { deep = nest(1), back = 199 }, { deep = nest(1), back = 200 } })
  local objs, errs = {}, {}
  for _, j in ipairs(ev:gather("ALL")) do
    objs[#objs + 1] = j.objective
    errs[#errs + 1] = tostring(j.metadata.error)
  end
  table.sort(objs, function(a, b) return tostring(a) < tostring(b) end)
  report { ok = ok, err = tostring(err), objs = objs, errs = table.concat(errs, "\n") }
end
]]):format(m.name), { np = m.np })
        -- parameters is level 1, deep level 2: nest(199) makes 200 levels, nest(200) 201.
        assert.is_false(t.ok)
        assert.truthy(t.err:find("submit: element 1: parameters.deep.n.n\u{2026}(196 more)\u{2026}n is nested too deeply: "
          .. "tables may nest at most 200 levels deep", 1, true), t.err)
        assert.are.same({ 1, 199, "F" }, t.objs)
        assert.truthy(t.errs:find("output.out.n.n\u{2026}(196 more)\u{2026}n is nested too deeply", 1, true), t.errs)
      end)

      it("a run function output that cannot cross fails the job with an error naming the key", function()
        local t = H.eval(([[
local ev <close> = evaluator.create(function(job)
  if job.parameters.k == 1 then return { objective = 1, metadata = { bad_meta_fn = print } } end
  if job.parameters.k == 3 then return 3 end
  return { objective = 2, extra = { bad_out_co = coroutine.create(print) } }
end, %q)
if ev then
  ev:submit({ { k = 1 }, { k = 2 } })
  local out = {}
  for _, j in ipairs(ev:gather("ALL")) do out[j.parameters.k] = { obj = j.objective, err = tostring(j.metadata.error) } end
  ev:submit({ { k = 3 } })
  report { out = out, after = ev:gather("ALL")[1].objective }
end
]]):format(m.name), { np = m.np })
        assert.are.equal("F", t.out[1].obj)
        assert.truthy(t.out[1].err:find("bad_meta_fn", 1, true), t.out[1].err)
        assert.are.equal("F", t.out[2].obj)
        assert.truthy(t.out[2].err:find("bad_out_co", 1, true), t.out[2].err)
        assert.are.equal(3, t.after, "the worker goes on")
      end)
    end
  end)
end
