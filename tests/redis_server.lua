-- tests/redis_server.lua: a private redis-server for a spec, on a free loopback port, in a
-- directory of its own, with or without a password; stopped (by its pid) when the spec is done.
--   local RS = require "redis_server"
--   local srv = RS.start { password = "s3cret", persist = true }   -- persist: AOF, fsync always
--   srv.port, srv.dir, srv.password, srv:lua() (Lua source for evaluator.RedisStorage{...})
--   srv:stop(); srv:restart()                                        -- same port, same data
local H = require "helper"

local RS = {}
RS.__index = RS

-- The output of a shell command.
local function capture(cmd)
  local p <close> = assert(io.popen(cmd, "r"))
  return p:read("a")
end

local function pid_of(self)
  return tonumber((H.read_file(self.dir .. "/redis.pid") or ""):match("%d+"))
end

-- Whether the server answers PING (with the password when it has one).
function RS:alive()
  local auth = self.password and ("-a " .. H.quote(self.password) .. " --no-auth-warning ") or ""
  return capture(("redis-cli -h 127.0.0.1 -p %d %sping 2>&1"):format(self.port, auth)):match("PONG") ~= nil
end

local function launch(self)
  local args = { "redis-server", "--port", tostring(self.port), "--bind", "127.0.0.1", "--daemonize", "yes",
    "--dir", self.dir, "--pidfile", self.dir .. "/redis.pid", "--logfile", self.dir .. "/redis.log", "--save", "''" }
  if self.persist then
    for _, a in ipairs({ "--appendonly", "yes", "--appendfsync", "always" }) do args[#args + 1] = a end
  end
  if self.password then
    args[#args + 1] = "--requirepass"
    args[#args + 1] = H.quote(self.password)
  end
  os.execute(table.concat(args, " ") .. " >/dev/null 2>&1")
  return H.wait_until(function() return self:alive() end, 10, 0.05)
end

--- Starts a server on a free port (tries others when one is taken).
function RS.start(opts)
  opts = opts or {}
  local self = setmetatable({ dir = H.tmpdir(), password = opts.password, persist = opts.persist }, RS)
  math.randomseed(os.time() + tonumber(tostring(self):match("0x(%x+)") or "0", 16) % 100000)
  for _ = 1, 20 do
    self.port = math.random(20000, 59999)
    local busy = capture(("ss -ltnH 'sport = :%d' 2>/dev/null"):format(self.port)) ~= ""
    if not busy and launch(self) then return self end
    self:stop(true)
  end
  error("could not start redis-server (is the redis-server package installed?): " .. (H.read_file(self.dir .. "/redis.log") or ""))
end

--- Stops the server (SIGKILL by pid, then waits until it is gone); keeps the directory if keep.
function RS:stop(keep)
  local pid = pid_of(self)
  if pid then
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    H.wait_until(function() return not H.exists("/proc/" .. pid) end, 10, 0.05)
    os.remove(self.dir .. "/redis.pid")
  end
  if not keep then H.rmdir(self.dir) end
end

--- Starts it again on the same port and directory (with persist, the data is back).
function RS:restart()
  assert(launch(self), "redis-server did not start again on port " .. self.port)
end

--- Lua source that makes a RedisStorage for this server.
function RS:lua()
  return ("evaluator.RedisStorage{ host = \"127.0.0.1\", port = %d%s }"):format(self.port,
    self.password and (", password = %q"):format(self.password) or "")
end

return RS
