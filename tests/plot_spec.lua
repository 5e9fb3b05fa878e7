-- plot_spec.lua: `evaluator-lua plot results.csv -o run.png|run.svg`: a valid PNG, an SVG whose
-- series hold the CSV's points, hostile column names and values never run as gnuplot commands,
-- clear errors for missing columns and empty files, and an output written safely.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"
local cjson = require "cjson"

local function plot(dir, args)
  return H.run("", { dir = dir, script_arg = false, bin_args = { "plot", table.unpack(args) }, timeout = 60 })
end

-- The series of gnuplot's SVG, read with python's XML parser: for each <g id="gnuplot_plot_...">,
-- how many point markers (<use>) it draws and the move-to points of its paths (key sample first).
local function svg_series(path)
  local py = [[
import json, re, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
out = {}
for g in root.iter(ns + "g"):
    gid = g.get("id") or ""
    if not gid.startswith("gnuplot_plot_"):
        continue
    uses = sum(1 for _ in g.iter(ns + "use"))
    paths = [re.findall(r"M([-\d.]+),([-\d.]+)", p.get("d", "")) for p in g.iter(ns + "path")]
    out[gid] = {"uses": uses, "paths": paths}
sys.stdout.write(json.dumps(out))
]]
  local p = assert(io.popen("python3 -c " .. H.quote(py) .. " " .. H.quote(path) .. " 2>&1"))
  local text = p:read("a")
  p:close()
  local ok, v = pcall(cjson.decode, text)
  assert(ok, "the SVG does not parse as XML: " .. text)
  return v
end

local function png_size(data)
  local w1, w2, w3, w4, h1, h2, h3, h4 = data:byte(17, 24)
  return ((w1 * 256 + w2) * 256 + w3) * 256 + w4, ((h1 * 256 + h2) * 256 + h3) * 256 + h4
end

local PNG_SIGNATURE = "\137PNG\r\n\26\n"

local function leftovers(dir)
  local p = assert(io.popen("ls -A " .. H.quote(dir)))
  local names = p:read("a")
  p:close()
  return names:find(".evl-plot.", 1, true) ~= nil
end

describe("evaluator-lua plot", function()
  local dir, records
  setup(function()
    -- a real run: 2 workers, jobs of 5-30 ms, every fourth one failing
    local r = H.run([[
      local search = require "evaluator.search"
      local function run(job)
        wait_s(0.005 + 0.025 * job.parameters.x)
        if job.parameters.k % 4 == 0 then return "F_FOURTH" end
        return -(job.parameters.x - 0.3)^2
      end
      local ev <close> = evaluator.create(run, "mpicomm")
      if ev then search.random(ev, { x = search.uniform(0, 1), k = search.int(1, 1000) }, { max_evals = 40, seed = 9, csv = "results.csv" }) end
    ]], { np = 3, keep = true, timeout = 90 })
    H.ok(r)
    dir = r.dir
    records = H.read_csv_records(dir .. "/results.csv")
  end)
  teardown(function() H.rmdir(dir) end)

  it("writes a PNG (signature, 1000x750) and says what it drew", function()
    local r = H.ok(plot(dir, { "results.csv", "-o", "run.png" }))
    local data = H.read_file(dir .. "/run.png")
    assert.are.equal(PNG_SIGNATURE, data:sub(1, 8))
    assert.are.equal("IHDR", data:sub(13, 16))
    local w, h = png_size(data)
    assert.are.same({ 1000, 750 }, { w, h })
    assert.is_true(#data > 10000, "a picture, not an empty canvas: " .. #data .. " bytes")
    assert.truthy(r.stdout:find("run.png: 40 jobs", 1, true), H.describe(r))
    assert.is_false(leftovers(dir), "the temporary directory is removed")
  end)

  it("SVG: one series per kind with one point per job: objectives, best so far, failures, one bar per job on 2 ranks", function()
    H.ok(plot(dir, { "results.csv", "-o", "run.svg" }))
    local done, failed, ranks = 0, 0, {}
    for _, rec in ipairs(records) do
      if rec.objective:sub(1, 1) == "F" then failed = failed + 1 else done = done + 1 end
      ranks[rec["m:rank"]] = true
    end
    assert.is_true(done > 0 and failed > 0)
    local s = svg_series(dir .. "/run.svg")
    -- gnuplot draws one more marker for each series' key entry
    assert.are.equal(done + 1, s.gnuplot_plot_1a.uses, "objective: a marker per finished job")
    assert.truthy(s.gnuplot_plot_2a, "the best-so-far line")
    assert.are.equal(0, s.gnuplot_plot_2a.uses)
    assert.are.equal(failed + 1, s.gnuplot_plot_3a.uses, "failed: a marker per failed job")
    local bars, ys = 0, {}
    for i = 2, #s.gnuplot_plot_1b.paths do -- the first path is the key sample
      for _, m in ipairs(s.gnuplot_plot_1b.paths[i]) do
        bars = bars + 1
        ys[m[2]] = true
      end
    end
    assert.are.equal(#records, bars, "activity: a bar per job")
    local n_ys, n_ranks = 0, 0
    for _ in pairs(ys) do n_ys = n_ys + 1 end
    for _ in pairs(ranks) do n_ranks = n_ranks + 1 end
    assert.are.equal(2, n_ranks)
    assert.are.equal(n_ranks, n_ys, "one row per rank")
  end)

  it("a planted symlink at the output name is replaced, not followed", function()
    H.write_file(dir .. "/victim.txt", "untouched")
    os.execute("ln -sf victim.txt " .. H.quote(dir .. "/planted.png"))
    H.ok(plot(dir, { "results.csv", "-o", "planted.png" }))
    assert.are.equal("untouched", H.read_file(dir .. "/victim.txt"))
    assert.are.equal(PNG_SIGNATURE, H.read_file(dir .. "/planted.png"):sub(1, 8))
    local p = io.popen("test -L " .. H.quote(dir .. "/planted.png") .. " && echo link")
    assert.are.equal("", p:read("a"))
    p:close()
  end)

  it("--help prints the usage and exits 0; an unknown option is an error", function()
    local r = H.ok(plot(dir, { "--help" }))
    assert.truthy(r.stdout:find("usage: evaluator-lua plot", 1, true), H.describe(r))
    r = plot(dir, { "results.csv", "--bogus" })
    assert.are.equal(1, r.code, H.describe(r))
    assert.truthy(r.stderr:find('evaluator-lua plot: unknown option "--bogus"', 1, true), H.describe(r))
  end)
end)

describe("evaluator-lua plot on hostile or broken CSVs", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  local function csv(rows)
    local out = {}
    for _, row in ipairs(rows) do
      local fields = {}
      for i, v in ipairs(row) do fields[i] = '"' .. v:gsub('"', '""') .. '"' end
      out[#out + 1] = table.concat(fields, ",")
    end
    return table.concat(out, "\r\n") .. "\r\n"
  end

  local function pwned()
    local p = assert(io.popen("ls " .. H.quote(dir) .. " | grep -c PWN"))
    local n = tonumber(p:read("a"))
    p:close()
    return n
  end

  it("column names and values are data: nothing in them runs (PNG and SVG)", function()
    local evil = function(tag)
      return ('"; system("touch %s/PWN%s"); print "'):format(dir, tag)
    end
    H.write_file(dir .. "/results.csv", csv({
      { "p:" .. evil("1"), "objective", "job_id", "m:error", "m:rank", "m:timestamp_end", "m:timestamp_start", 'm:`touch ' .. dir .. '/PWN2`' },
      { evil("3"), "-1.5", "0", evil("4"), "1", "0.5", "0.1", "`touch " .. dir .. "/PWN5`" },
      { "x\nsystem \"touch " .. dir .. "/PWN6\"\n", "F_" .. evil("7"), "1", "line1\n!touch " .. dir .. "/PWN8", "2", "0.9", "0.2", "" },
      { "ok", "-0.5", "2", "", "1", "1.2", "0.6", "" },
      { "never ran", "F_CANCELLED", "3", "", "-1", "1.3", "1.3", "" }, -- cancelled in the queue: no bar
    }))
    for _, out in ipairs({ "run.png", "run.svg" }) do
      local r = H.ok(plot(dir, { "results.csv", "-o", out }))
      assert.truthy(r.stdout:find(out .. ": 4 jobs, 2 failed, on 2 ranks", 1, true), H.describe(r))
    end
    assert.are.equal(0, pwned(), "no command in the CSV ran")
    local s = svg_series(dir .. "/run.svg")
    assert.are.equal(3, s.gnuplot_plot_1a.uses)
    assert.are.equal(3, s.gnuplot_plot_3a.uses)
    local bars = 0
    for i = 2, #s.gnuplot_plot_1b.paths do bars = bars + #s.gnuplot_plot_1b.paths[i] end
    assert.are.equal(3, bars, "a bar for each job that ran, none for the one cancelled in the queue")
    local svg = H.read_file(dir .. "/run.svg")
    assert.falsy(svg:find("PWN", 1, true), "no CSV text reaches the picture")
  end)

  it("an objective that is neither a number nor a failure: an error with file:line, nothing run, nothing written", function()
    H.write_file(dir .. "/results.csv", csv({
      { "objective", "job_id", "m:rank", "m:timestamp_end", "m:timestamp_start" },
      { "1", "0", "1", "0.5", "0.1" },
      { ('"; system("touch %s/PWN1")'):format(dir), "1", "1", "0.9", "0.6" },
    }))
    local r = plot(dir, { "results.csv", "-o", "run.png" })
    assert.are.equal(1, r.code, H.describe(r))
    assert.truthy(r.stderr:find("evaluator-lua plot: results.csv:3: objective is not a finite number:", 1, true), H.describe(r))
    assert.are.equal(0, pwned())
    assert.is_false(H.exists(dir .. "/run.png"))
    assert.is_false(leftovers(dir))
  end)

  it("missing columns, an empty file, a header alone, a missing file, a ragged row: clear errors", function()
    local cases = {
      { "p:x,objective,job_id\n1,2,0\n", "results.csv: missing columns m:timestamp_start, m:timestamp_end, m:rank" },
      { "p:x,job_id,m:rank,m:timestamp_end,m:timestamp_start\n1,0,1,0.5,0.1\n", "results.csv: missing column objective" },
      { "", "results.csv is empty: no header, no jobs" },
      { "objective,job_id,m:rank,m:timestamp_end,m:timestamp_start\n", "results.csv has a header but no jobs" },
      { "objective,job_id,m:rank,m:timestamp_end,m:timestamp_start\n1,0,1,0.5\n", "results.csv:2: 4 fields where the header has 5" },
      { "objective,job_id,m:rank,m:timestamp_end,m:timestamp_start\n1,0,1.5,0.5,0.1\n", "results.csv:2: m:rank is not an integer" },
      { false, "cannot read results.csv" },
    }
    for _, c in ipairs(cases) do
      os.remove(dir .. "/results.csv")
      if c[1] then H.write_file(dir .. "/results.csv", c[1]) end
      local r = plot(dir, { "results.csv", "-o", "run.png" })
      assert.are.equal(1, r.code, H.describe(r))
      assert.truthy(r.stderr:find("evaluator-lua plot: " .. c[2], 1, true), "expected: " .. c[2] .. "\n" .. H.describe(r))
      assert.is_false(H.exists(dir .. "/run.png"))
    end
  end)
end)
