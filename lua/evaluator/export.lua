-- evaluator.export: `evaluator-lua export STORAGE --search-id ID -o results.csv`, the CSV of a stored
-- search, as dump_jobs_done_to_csv writes it (jobs by number). STORAGE is a SQLite file or
-- redis://[:password@]host:port/db. Runs without MPI; the password is never printed.
local storage = require "evaluator.storage"
local core = require "evaluator.core"

local M = {}

local USAGE = "usage: evaluator-lua export STORAGE --search-id ID -o results.csv"
  .. " (STORAGE: a SQLite file or redis://[:password@]host:port/db)"

local function parse_args(args)
  local opts = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--search-id" or a == "-o" or a == "--output" then
      if args[i + 1] == nil then error(("%s needs a value; %s"):format(a, USAGE), 0) end
      opts[a == "--search-id" and "search_id" or "output"] = args[i + 1]
      i = i + 2
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      error(("unknown option '%s'; %s"):format(a, USAGE), 0)
    elseif opts.storage then
      error(("one STORAGE only (got a second: '%s'); %s"):format(a, USAGE), 0)
    else
      opts.storage = a
      i = i + 1
    end
  end
  if not opts.storage then error("no STORAGE given; " .. USAGE, 0) end
  if not opts.search_id then error("no --search-id given; " .. USAGE, 0) end
  if not opts.output then error("no -o FILE given; " .. USAGE, 0) end
  return opts
end

-- redis://[:password@]host[:port][/db] -> RedisStorage's table; errors never repeat the URL,
-- which may hold the password.
local function parse_redis_url(url)
  local rest = url:sub(9)
  local auth, hostpart = rest:match("^([^@]*)@(.*)$")
  local password
  if auth then
    password = auth:match("^:(.*)$") or auth:match("^[^:]*:(.*)$")
    if not password then error("STORAGE: the password goes after a colon: redis://:password@host:port/db", 0) end
    rest = hostpart
  end
  local host, port, db = rest:match("^([^:/]+):?(%d*)/?(%d*)$")
  if not host then error("STORAGE: a Redis URL is redis://[:password@]host:port/db", 0) end
  return { host = host, port = tonumber(port) or 6379, db = tonumber(db) or 0, password = password ~= "" and password or nil }
end

local function open_storage(spec)
  if spec:match("^redis://") then return storage.RedisStorage(parse_redis_url(spec)) end
  local f = io.open(spec, "rb")
  if not f then error(("STORAGE '%s': no such file (a SQLite file written by evaluator-lua, or redis://...)"):format(spec), 0) end
  f:close()
  return storage.SQLiteStorage(spec)
end

--- main(args) -> exit status
function M.main(args)
  local opts = parse_args(args)
  local f = io.open(opts.output, "rb")
  if f then
    f:close()
    error(("%s exists: export does not overwrite a file (remove it or choose another -o)"):format(opts.output), 0)
  end
  local ok, store = pcall(open_storage, opts.storage)
  if not ok then core.raise(tostring(store)) end -- without the module's line: no user's line here
  if not store:has_search(opts.search_id) then
    local ids = store:load_all_search_ids()
    error(("the storage holds no search '%s' (it holds: %s)"):format(opts.search_id,
      #ids > 0 and table.concat(ids, ", ") or "none"), 0)
  end
  local ids = store:load_all_job_ids(opts.search_id)
  local by_id = store:load_jobs(ids)
  local jobs = {}
  for i, id in ipairs(ids) do
    jobs[i] = by_id[id] or error(("job %s is listed but cannot be read"):format(id), 0)
  end
  if #jobs == 0 then
    io.stderr:write(("evaluator-lua export: search '%s' has no finished job: nothing written\n"):format(opts.search_id))
    return 0
  end
  core.csv_dump(opts.output, jobs, true)
  io.stderr:write(("evaluator-lua export: %d jobs of search '%s' written to %s\n"):format(#jobs, opts.search_id, opts.output))
  return 0
end

return M
