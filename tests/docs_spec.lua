-- docs_spec.lua: the documentation runs as written. Every shell command of README.md, docs/API.md
-- and the man page's examples (indented blocks, ```sh blocks, .nf/.fi blocks) is run by a test,
-- with the installed evaluator-lua first on PATH, from a fresh directory holding the README's
-- scripts (each ```lua block whose first line is `-- NAME.lua`, e.g. search.lua and
-- first_search.lua); every ```lua example of docs/API.md is run and its `--> ` comments are checked
-- against what it printed. A command that cannot run inside this suite must be in ELSEWHERE, which
-- names the test that runs it; a command in neither fails the suite. Every link to a section of
-- README.md or docs/API.md names a heading that exists.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local H = require "helper"

local DOCS = { "README.md", "docs/API.md" }
local MAN = "docs/evaluator-lua.1"

-- Commands run by other tests (exact text -> where and why not here).
local ELSEWHERE = {
  ["bash scripts/install-deps.sh && make test"] = "CI's tests stage (.ci/run) runs `make test`; here it would run this suite inside itself",
  ["srun --mpi=pmix -n 3 --overcommit evaluator-lua search.lua"] = "tests/slurm_spec.lua, against a private Slurm",
  ["sbatch search.sbatch"] = "tests/slurm_spec.lua, against a private Slurm",
}
-- Commands that run in the source tree (they build or install it), not in the user's directory.
local IN_TREE = { ["^make "] = true, ["^bash scripts/"] = true, ["\nmake "] = true }
-- Open MPI's host file for the cluster commands: this machine, with enough slots.
local HOSTS = "localhost slots=16\n"

local function read(rel) return assert(H.read_file(H.ROOT .. "/" .. rel), "cannot read " .. rel) end

-- Shell command blocks of a markdown file (4-space indented blocks outside fences, ```sh blocks),
-- each a list of lines; the lines of one block run in one shell, one after the other.
local function markdown_blocks(text)
  local blocks, cur, in_fence, fence_lang, prev_blank = {}, nil, false, nil, true
  local function close() if cur then blocks[#blocks + 1] = cur end cur = nil end
  for line in (text .. "\n"):gmatch("(.-)\n") do
    local fence = line:match("^```(%w*)")
    if fence then
      close()
      in_fence, fence_lang = not in_fence, fence
      if in_fence and (fence_lang == "sh" or fence_lang == "shell") then cur = {} end
    elseif in_fence then
      if cur then cur[#cur + 1] = line end
    else
      local cmd = line:match("^    (%S.*)$")
      if cmd and (prev_blank or cur) then
        cur = cur or {}
        cur[#cur + 1] = (cmd:gsub("%s+#%s.*$", ""))
      else
        close()
      end
      prev_blank = line:match("^%s*$") ~= nil
    end
  end
  close()
  return blocks
end

-- The man page's example blocks (.nf ... .fi), un-escaped.
local function man_blocks(text)
  local blocks = {}
  for block in text:gmatch("%.nf\n(.-)%.fi") do
    local cur = {}
    for line in block:gmatch("[^\n]+") do cur[#cur + 1] = (line:gsub("\\%-", "-")) end
    blocks[#blocks + 1] = cur
  end
  return blocks
end

-- ```lua blocks of a markdown file.
local function lua_blocks(text)
  local out = {}
  for body in text:gmatch("```lua\n(.-)```") do out[#out + 1] = body end
  return out
end

local README = read("README.md")
-- The README's scripts: name -> text, from the ```lua blocks that start with `-- NAME.lua`.
local SCRIPTS = {}
for name, body in README:gmatch("```lua\n%-%- ([%w_]+%.lua)\n(.-)```") do SCRIPTS[name] = "-- " .. name .. "\n" .. body end
assert(SCRIPTS["search.lua"], "README.md has no search.lua block")
local bindir = H.BIN:match("^(.*)/")

local function shell(dir, cmd, home)
  local full = ("cd %s && export PATH=%s HOME=%s OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 && timeout -k 5 300 bash -c %s </dev/null 2>&1; echo \"@@rc $?\"")
    :format(H.quote(dir), H.quote(bindir .. ":" .. os.getenv("PATH")), H.quote(home), H.quote(cmd))
  local p = assert(io.popen(full, "r"))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("@@rc (%d+)%s*$")), out
end

-- Every `--> a b ...` comment: each piece (split on spaces and "...") is in the output, in order.
local function check_arrows(block, out)
  local pos = 1
  for expect in block:gmatch("%-%->%s*([^\n]*)") do
    for word in expect:gmatch("%S+") do
      for piece in word:gmatch("[^.]*[^.]") do
        if #piece > 0 and not piece:match("^%.+$") then
          local s, e = out:find(piece, pos, true)
          assert(s, ("expected %q in the output (from `--> %s`)\n--- output:\n%s"):format(piece, expect, out))
          pos = e + 1
        end
      end
    end
  end
end

describe("the documentation's commands run as written", function()
  local blocks = {}
  for _, doc in ipairs(DOCS) do
    for _, b in ipairs(markdown_blocks(read(doc))) do blocks[#blocks + 1] = { doc = doc, lines = b } end
  end
  for _, b in ipairs(man_blocks(read(MAN))) do blocks[#blocks + 1] = { doc = MAN, lines = b } end
  local seen = {}
  for _, b in ipairs(blocks) do for _, l in ipairs(b.lines) do seen[l] = true end end

  it("finds the commands (the extraction works)", function()
    assert.is_true(seen["mpirun --oversubscribe -np 3 evaluator-lua search.lua"])
    assert.is_true(seen["sbatch search.sbatch"])
    assert.is_true(#blocks >= 10, "only " .. #blocks .. " command blocks found")
  end)

  it("every command that is not run here names the test that runs it, and is still in the docs", function()
    for cmd in pairs(ELSEWHERE) do assert.is_true(seen[cmd] == true, "ELSEWHERE lists a command the docs no longer have: " .. cmd) end
  end)

  for _, b in ipairs(blocks) do
    local run = {}
    for _, l in ipairs(b.lines) do if not ELSEWHERE[l] then run[#run + 1] = l end end
    if #run > 0 then
      local text = table.concat(run, "\n")
      it(("%s: %s"):format(b.doc, table.concat(run, " ; ")), function()
        local in_tree = false
        for pat in pairs(IN_TREE) do in_tree = in_tree or text:find(pat) ~= nil end
        local home = H.tmpdir()
        local dir = in_tree and H.ROOT or H.tmpdir()
        if not in_tree then
          for name, text in pairs(SCRIPTS) do H.write_file(dir .. "/" .. name, text) end
          H.write_file(dir .. "/hosts", HOSTS)
          os.execute("cp -r " .. H.quote(H.ROOT .. "/examples") .. " " .. H.quote(dir .. "/examples"))
        end
        local rc, out = shell(dir, "set -e\n" .. text, home)
        local _, runs = text:gsub("%f[%w_]search%.lua", "")
        local rows = (not in_tree and runs > 0) and H.read_csv(dir .. "/results.csv")
        if not in_tree then H.rmdir(dir) end
        H.rmdir(home)
        assert.are.equal(0, rc, text .. "\n" .. out)
        if rows then -- a run's first dump replaces the file a previous run left: the last run's 3 jobs
          assert.are.equal(1 + 3, #rows, ("%d runs of search.lua: the file should hold a header and the last run's 3 jobs\n%s"):format(runs, out))
        end
      end)
    end
  end
end)

describe("docs/API.md's Lua examples run as written", function()
  for i, block in ipairs(lua_blocks(read("docs/API.md"))) do
    local cmd = block:match("^%-%- (mpirun [^\n]*)") or "evaluator-lua example.lua"
    it(("example %d (%s): %s"):format(i, cmd, (block:match("\n([^\n]*[%w][^\n]*)") or ""):sub(1, 60)), function()
      local dir, home = H.tmpdir(), H.tmpdir()
      H.write_file(dir .. "/example.lua", block)
      local rc, out = shell(dir, cmd, home)
      H.rmdir(dir)
      H.rmdir(home)
      assert.are.equal(0, rc, cmd .. "\n" .. block .. "\n--- output:\n" .. out)
      -- "evaluator-lua: note: ..." is information (serial with num_workers > 1), not an error
      assert.is_nil(out:gsub("evaluator%-lua: note:", ""):find("evaluator-lua:", 1, true), "an error was printed\n" .. out)
      check_arrows(block, out)
    end)
  end
end)

-- GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'.
local function slug(heading)
  return (heading:lower():gsub("[^%w%s_-]", ""):gsub("%s", "-"))
end

local function anchors(text)
  local set = {}
  for h in (text .. "\n"):gmatch("\n#+ ([^\n]+)") do set[slug(h)] = true end
  return set
end

describe("the documentation's links", function()
  it("every link to a section (#anchor) of README.md or docs/API.md names a heading that exists", function()
    local docs = { ["README.md"] = read("README.md"), ["docs/API.md"] = read("docs/API.md") }
    local targets = { ["README.md"] = anchors(docs["README.md"]), ["docs/API.md"] = anchors(docs["docs/API.md"]) }
    local checked = 0
    for name, text in pairs(docs) do
      for file, anchor in text:gmatch("%]%(([^)#]*)#([^)]+)%)") do
        local target = file == "" and name or (file:match("README%.md$") and "README.md" or "docs/API.md")
        assert.is_true(targets[target][anchor] == true, ("%s links to %s#%s, which has no such heading"):format(name, target, anchor))
        checked = checked + 1
      end
    end
    assert.is_true(checked >= 10, "only " .. checked .. " links found")
  end)
end)
