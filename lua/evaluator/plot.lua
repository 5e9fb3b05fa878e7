-- evaluator.plot: `evaluator-lua plot results.csv -o run.png` (or .svg): a picture of a run with
-- gnuplot. Top: each job's objective over time, the best so far, failures marked; bottom: worker
-- activity, one row per rank, a bar from each job's start to its end.
-- A CSV is data, never code: only numbers this module formats reach files that gnuplot reads, and
-- the gnuplot script is fixed text (no column name or value is ever pasted into it). Everything
-- is written in a private directory (mktemp -d, mode 0700) beside the output, and the picture is
-- renamed into place, so the output is never half-written and no planted name is followed.
local M = {}

M.USAGE = [[
usage: evaluator-lua plot RESULTS.csv [-o OUTPUT] [--minimize]
  RESULTS.csv   a CSV written by dump_jobs_done_to_csv
  -o OUTPUT     the picture: PNG, or SVG when the name ends in .svg (default run.png)
  --minimize    the best so far is the smallest objective (by default the largest, as DeepHyper)
]]

local function fail(fmt, ...) error(fmt:format(...), 0) end

local function shown(v)
  v = tostring(v)
  if #v > 40 then v = v:sub(1, 37) .. "..." end
  return ("%q"):format(v):gsub("\\\n", "\\n")
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

---------------------------------------------------------------------------------------------------
-- RFC 4180 CSV: a list of records, each { line = where it starts, fields... }.

function M.parse_csv(text, name)
  local records, rec, field, i, line, n = {}, nil, {}, 1, 1, #text
  local function finish_field()
    rec = rec or { line = line }
    rec[#rec + 1] = table.concat(field)
    field = {}
  end
  local start_line = line
  while i <= n do
    local c = text:sub(i, i)
    if c == '"' and #field == 0 then
      local j = i + 1
      while true do
        local q = text:find('"', j, true)
        if not q then fail("%s:%d: a quoted field is not closed", name, start_line) end
        field[#field + 1] = text:sub(j, q - 1)
        for _ in text:sub(j, q - 1):gmatch("\n") do line = line + 1 end
        if text:sub(q + 1, q + 1) == '"' then field[#field + 1] = '"'; j = q + 2
        else i = q + 1; break end
      end
    elseif c == "," then
      rec = rec or { line = start_line }
      finish_field()
      i = i + 1
    elseif c == "\n" or c == "\r" then
      rec = rec or { line = start_line }
      finish_field()
      records[#records + 1] = rec
      rec = nil
      i = i + ((c == "\r" and text:sub(i + 1, i + 1) == "\n") and 2 or 1)
      line = line + 1
      start_line = line
    else
      local j = text:find('[,\r\n]', i) or n + 1
      field[#field + 1] = text:sub(i, j - 1)
      i = j
    end
  end
  if rec or #field > 0 then
    rec = rec or { line = start_line }
    finish_field()
    records[#records + 1] = rec
  end
  return records
end

---------------------------------------------------------------------------------------------------
-- The jobs of a results CSV: { t_start, t_end, rank, objective (nil when failed) }.

local REQUIRED = { "m:timestamp_start", "m:timestamp_end", "m:rank" }

local function read_jobs(path)
  local f, err = io.open(path, "rb")
  if not f then fail("cannot read %s: %s", path, err) end
  local text = f:read("a")
  f:close()
  if text == nil or text:match("^%s*$") then fail("%s is empty: no header, no jobs", path) end
  local records = M.parse_csv(text, path)
  local header, col = records[1], {}
  for j, name in ipairs(header) do col[name] = col[name] or j end
  local obj_col = col.objective or col.objective_0
  local missing = {}
  if not obj_col then missing[1] = "objective" end
  for _, name in ipairs(REQUIRED) do
    if not col[name] then missing[#missing + 1] = name end
  end
  if #missing > 0 then
    fail("%s: missing column%s %s (a CSV written by dump_jobs_done_to_csv has objective, m:timestamp_start, "
      .. "m:timestamp_end and m:rank)", path, #missing > 1 and "s" or "", table.concat(missing, ", "))
  end
  if #records < 2 then fail("%s has a header but no jobs", path) end
  local function number(rec, name, integer)
    local v = rec[col[name] or obj_col]
    if v == nil or v == "" then return nil end
    local x = tonumber(v)
    if not x or x ~= x or x == math.huge or x == -math.huge or (integer and x ~= math.floor(x)) then
      fail("%s:%d: %s is not %s: %s", path, rec.line, name, integer and "an integer" or "a finite number", shown(v))
    end
    return x
  end
  local jobs = {}
  for r = 2, #records do
    local rec = records[r]
    if #rec ~= #header then
      fail("%s:%d: %d fields where the header has %d", path, rec.line, #rec, #header)
    end
    local o = rec[obj_col]
    local job = { t_start = number(rec, "m:timestamp_start"), t_end = number(rec, "m:timestamp_end"),
      rank = number(rec, "m:rank", true) }
    -- a failure is "F..." (or empty, as a job with no objective is written); anything else must be a number
    if o ~= "" and o:sub(1, 1) ~= "F" then job.objective = number(rec, header[obj_col]) end
    if not job.t_end then job.t_end = job.t_start end
    if job.t_end then jobs[#jobs + 1] = job end
  end
  if #jobs == 0 then fail("%s: no job has an m:timestamp_end", path) end
  table.sort(jobs, function(a, b) return a.t_end < b.t_end end)
  return jobs
end

---------------------------------------------------------------------------------------------------
-- Data files (numbers only) and the fixed gnuplot script.

local function num(x) return ("%.17g"):format(x) end

local function write(dir, name, lines)
  local f, err = io.open(dir .. "/" .. name, "wb")
  if not f then fail("cannot write %s/%s: %s", dir, name, err) end
  assert(f:write(table.concat(lines, "\n"), "\n"))
  assert(f:close())
end

-- Writes the data files into dir; returns what the script needs to know about them.
local function write_data(dir, jobs, minimize)
  local obj, best, failed, act = {}, {}, {}, {}
  local b, lo, tmin, tmax, rmin, rmax = nil, math.huge, math.huge, -math.huge, math.huge, -math.huge
  local ranks, n_ranks = {}, 0
  for _, j in ipairs(jobs) do
    if j.objective then
      lo = math.min(lo, j.objective)
      if b == nil or (minimize and j.objective < b or not minimize and j.objective > b) then b = j.objective end
      obj[#obj + 1] = num(j.t_end) .. " " .. num(j.objective)
      best[#best + 1] = num(j.t_end) .. " " .. num(b)
    end
    tmin, tmax = math.min(tmin, j.t_start or j.t_end), math.max(tmax, j.t_end)
    if j.t_start and j.rank and j.rank >= 0 then -- rank -1: cancelled before it started
      act[#act + 1] = ("%s %d %s 0"):format(num(j.t_start), j.rank, num(j.t_end - j.t_start))
      rmin, rmax = math.min(rmin, j.rank), math.max(rmax, j.rank)
      if not ranks[j.rank] then ranks[j.rank], n_ranks = true, n_ranks + 1 end
    end
  end
  if #best > 0 then best[#best + 1] = num(tmax) .. " " .. num(b) end
  local y_fail = #obj > 0 and lo or 0
  for _, j in ipairs(jobs) do
    if not j.objective then failed[#failed + 1] = num(j.t_end) .. " " .. num(y_fail) end
  end
  write(dir, "objective.dat", obj)
  write(dir, "best.dat", best)
  write(dir, "failed.dat", failed)
  write(dir, "activity.dat", act)
  return { n_obj = #obj, n_failed = #failed, n_act = #act, tmin = math.min(tmin, 0), tmax = tmax,
    rmin = rmin, rmax = rmax, n_ranks = n_ranks }
end

local function script(info, svg)
  local s = {}
  local function add(fmt, ...) s[#s + 1] = select("#", ...) > 0 and fmt:format(...) or fmt end
  if svg then add('set terminal svg size 1000,750 noenhanced font "sans,11" background rgb "white"')
  else add('set terminal pngcairo size 1000,750 noenhanced font "sans,10"') end
  add('set output "%s"', svg and "out.svg" or "out.png")
  local span = info.tmax - info.tmin
  add("set xrange [%s:%s]", num(info.tmin), num(info.tmax + (span > 0 and span * 0.02 or 1)))
  add("set grid")
  add("set lmargin at screen 0.08")
  add("set rmargin at screen 0.80") -- both panels share the x axis: the same margins align them
  add("set multiplot layout 2,1")
  add('set title "objective of each job"')
  add('set xlabel "seconds since the evaluator was created"')
  add('set ylabel "objective"')
  add("set key outside right top")
  local series = {}
  if info.n_obj > 0 then
    series[#series + 1] = "'objective.dat' using 1:2 with points pt 7 ps 0.5 lc rgb '#1f77b4' title 'objective'"
    series[#series + 1] = "'best.dat' using 1:2 with steps lw 2 lc rgb '#d62728' title 'best so far'"
  end
  if info.n_failed > 0 then
    series[#series + 1] = "'failed.dat' using 1:2 with points pt 2 ps 1 lc rgb '#000000' title 'failed'"
  end
  add("plot " .. table.concat(series, ", \\\n  "))
  add('set title "worker activity"')
  add('set ylabel "rank"')
  if info.n_act > 0 then
    add("set yrange [%s:%s]", num(info.rmin - 0.5), num(info.rmax + 0.5))
    if info.rmax - info.rmin <= 32 then add("set ytics 1") end
    local lw = math.max(1, math.min(12, 240 / (info.rmax - info.rmin + 1)))
    add("plot 'activity.dat' using 1:2:3:4 with vectors nohead lw %s lc rgb '#2ca02c' title 'running a job'", num(lw))
  else
    add("set yrange [0:1]")
    add('set label 1 "no job has both m:timestamp_start and m:rank" at graph 0.5,0.5 center')
    add("plot NaN notitle")
  end
  add("unset multiplot")
  return s
end

---------------------------------------------------------------------------------------------------

local function parse_args(args)
  local o = { output = "run.png" }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then o.help = true
    elseif a == "-o" or a == "--output" then
      i = i + 1
      o.output = args[i] or fail("%s needs a file name", a)
    elseif a:match("^%-%-output=") then o.output = a:sub(10)
    elseif a == "--minimize" then o.minimize = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then fail("unknown option %s\n%s", shown(a), M.USAGE)
    elseif o.input then fail("one CSV at a time (got %s and %s)\n%s", shown(o.input), shown(a), M.USAGE)
    else o.input = a end
    i = i + 1
  end
  if not o.help and not o.input then fail("no CSV given\n%s", M.USAGE) end
  if o.output == "" then fail("the output name is empty") end
  return o
end

local function capture(cmd)
  local p = io.popen(cmd, "r")
  if not p then fail("cannot run %s", cmd) end
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok, code
end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a") or ""
  f:close()
  return s
end

--- main(args): draws the CSV args[1] into the picture named by -o; returns the exit status.
function M.main(args)
  local o = parse_args(args)
  if o.help then io.write(M.USAGE) return 0 end
  local jobs = read_jobs(o.input)
  local _, has_gnuplot = capture("command -v gnuplot >/dev/null 2>&1")
  if not has_gnuplot then fail("gnuplot is not installed (Debian: apt-get install gnuplot-nox)") end
  local svg = o.output:lower():match("%.svg$") ~= nil
  local target_dir = o.output:match("^(.*)/[^/]*$") or "."
  if target_dir == "" then target_dir = "/" end
  if target_dir:sub(1, 1) ~= "/" and target_dir:sub(1, 2) ~= "./" then target_dir = "./" .. target_dir end
  local out, ok = capture("mktemp -d " .. shell_quote(target_dir .. "/.evl-plot.XXXXXX") .. " 2>&1")
  local dir = out:gsub("\n$", "")
  if not ok then fail("cannot create a temporary directory in %s: %s", target_dir, dir) end
  local files = { "objective.dat", "best.dat", "failed.dat", "activity.dat", "plot.gp", "gnuplot.err",
    svg and "out.svg" or "out.png" }
  local function cleanup()
    for _, name in ipairs(files) do os.remove(dir .. "/" .. name) end
    os.remove(dir)
  end
  local info
  local okrun, err = pcall(function()
    info = write_data(dir, jobs, o.minimize)
    write(dir, "plot.gp", script(info, svg))
    local _, ran = capture(("cd %s && gnuplot plot.gp >gnuplot.err 2>&1"):format(shell_quote(dir)))
    if not ran then fail("gnuplot failed:\n%s", read_all(dir .. "/gnuplot.err")) end
    local moved, why = os.rename(dir .. "/" .. (svg and "out.svg" or "out.png"), o.output)
    if not moved then fail("cannot write %s: %s", o.output, why) end
  end)
  cleanup()
  if not okrun then error(err, 0) end
  io.write(("%s: %d jobs, %d failed, on %d ranks\n"):format(o.output, #jobs, info.n_failed, info.n_ranks))
  return 0
end

return M
