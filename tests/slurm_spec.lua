-- slurm_spec.lua: evaluator-lua under Slurm, for real: a private single-node Slurm (munged,
-- slurmctld, slurmd on free ports, state in a temporary directory: scripts/slurm-start.sh) runs the
-- README's `srun --mpi=pmix` command and its `sbatch` script calling mpirun, each running the
-- README's search.lua; the CSV is checked; every daemon started is stopped at the end.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"@@rc $?\"", "r"))
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("@@rc (%d+)%s*$"))
  return rc, (out:gsub("@@rc %d+%s*$", ""))
end

-- The README's fenced block whose first line is `first`, and the indented command starting with
-- `prefix` (the README is what users copy: the test runs exactly that).
local function readme_block(first)
  local readme = H.read_file(H.ROOT .. "/README.md")
  for body in readme:gmatch("```%w*\n(.-)```") do
    if body:sub(1, #first) == first then return body end
  end
  error("README.md has no fenced block starting with " .. first)
end
local function readme_command(prefix)
  local readme = H.read_file(H.ROOT .. "/README.md")
  for line in readme:gmatch("[^\n]+") do
    local cmd = line:match("^    (.*)$")
    if cmd and cmd:sub(1, #prefix) == prefix then return cmd end
  end
  error("README.md has no command starting with " .. prefix)
end

local function check_csv(path)
  local records, header = H.read_csv_records(path)
  assert.are.equal(3, #records, "three jobs in " .. path)
  local objectives, ranks = {}, {}
  for _, rec in ipairs(records) do
    objectives[#objectives + 1] = tonumber(rec.objective)
    ranks[tonumber(rec["m:rank"])] = true
  end
  table.sort(objectives)
  assert.are.same({ -1.0, -0.25, 0.0 }, objectives)
  assert.is_nil(ranks[0], "the root ran no job: the workers are other Slurm tasks")
  assert.is_true(ranks[1] or ranks[2], "jobs ran on ranks 1 and 2")
  assert.truthy(table.concat(header, ","):find("p:x,objective,job_id", 1, true))
end

describe("evaluator-lua under Slurm (a private single-node cluster)", function()
  local dir, env, work, search

  setup(function()
    local rc, out = sh("bash " .. H.quote(H.ROOT .. "/scripts/slurm-start.sh"))
    assert(rc == 0, "scripts/slurm-start.sh failed:\n" .. out)
    dir = assert(out:match("EVL_SLURM_DIR=(%S+)"), out)
    env = "export SLURM_CONF=" .. H.quote(dir .. "/slurm.conf") .. " PATH=" .. H.quote(H.BIN:match("^(.*)/") .. ":" .. os.getenv("PATH"))
      .. " OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; "
    work = H.tmpdir()
    search = readme_block("-- search.lua")
    H.write_file(work .. "/search.lua", search)
  end)

  teardown(function()
    if dir then sh("bash " .. H.quote(H.ROOT .. "/scripts/slurm-stop.sh") .. " " .. H.quote(dir)) end
    H.rmdir(work)
  end)

  it("srun --mpi=pmix starts every rank and the search writes its CSV (the README's command)", function()
    local cmd = readme_command("srun ")
    assert.truthy(cmd:find("--mpi=pmix", 1, true), cmd)
    local rc, out = sh(env .. "cd " .. H.quote(work) .. " && timeout -k 5 120 " .. cmd)
    assert.are.equal(0, rc, cmd .. "\n" .. out)
    check_csv(work .. "/results.csv")
    os.remove(work .. "/results.csv")
  end)

  it("an sbatch script calling mpirun runs the search as a batch job (the README's script)", function()
    H.write_file(work .. "/search.sbatch", readme_block("#!/bin/bash"))
    local cmd = readme_command("sbatch ")
    local rc, out = sh(env .. "cd " .. H.quote(work) .. " && " .. cmd:gsub("^sbatch ", "sbatch --parsable "))
    assert.are.equal(0, rc, cmd .. "\n" .. out)
    local job = assert(out:match("(%d+)"), out)
    local state
    H.wait_until(function()
      local _, o = sh(env .. "squeue -h -j " .. job .. " -o %T")
      state = o:match("%S+")
      return state == nil
    end, 120, 0.2)
    assert.is_nil(state, "job " .. job .. " still " .. tostring(state) .. " after 120 s")
    local _, info = sh(env .. "scontrol show job " .. job)
    local log = H.read_file(work .. "/search-" .. job .. ".out") or "(no output file)"
    assert.truthy(info:find("JobState=COMPLETED", 1, true), info .. "\n" .. log)
    assert.truthy(info:find("ExitCode=0:0", 1, true), info .. "\n" .. log)
    check_csv(work .. "/results.csv")
  end)

  it("slurm-stop.sh stops every daemon slurm-start.sh started and removes its directory", function()
    local pids = {}
    for _, f in ipairs({ "/slurmd.pid", "/slurmctld.pid", "/munge/munged.pid" }) do
      pids[#pids + 1] = assert(tonumber((H.read_file(dir .. f) or ""):match("%d+")), "no pid in " .. f)
    end
    for _, pid in ipairs(pids) do assert.are.equal(0, (sh("kill -0 " .. pid)), "daemon " .. pid .. " is running") end
    local rc, out = sh("bash " .. H.quote(H.ROOT .. "/scripts/slurm-stop.sh") .. " " .. H.quote(dir))
    assert.are.equal(0, rc, out)
    for _, pid in ipairs(pids) do assert.are_not.equal(0, (sh("kill -0 " .. pid)), "daemon " .. pid .. " still runs") end
    assert.is_false(H.exists(dir .. "/slurm.conf"))
    dir = nil
  end)
end)
