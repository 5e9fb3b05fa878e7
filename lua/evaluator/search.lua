-- evaluator.search: search spaces (uniform, log-uniform, integer, choice, constants, nested) and
-- the ready asynchronous drivers over any evaluator: search.random, search.evolution (regularized
-- evolution) and search.tpe (the Tree-structured Parzen Estimator, Optuna's default sampler).
-- The drivers use only the public Evaluator API, so they run under every method, mpicomm included.
local evaluator = require "evaluator"

local M = {}

local fail = evaluator._fail -- raises at the user's line

---------------------------------------------------------------------------------------------------
-- The generator: xoshiro256** seeded by splitmix64, on Lua's 64-bit integers, so that one seed
-- gives the same samples on every platform and under every method (math.random is global state
-- that a run function may also draw from).

local Rng = {}
Rng.__index = Rng

local function splitmix(state)
  state = state + 0x9E3779B97F4A7C15
  local z = state
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return state, z ~ (z >> 31)
end

local function rotl(x, k) return (x << k) | (x >> (64 - k)) end

--- search.rng(seed): a generator; seed is an integer (default: from the clock).
function M.rng(seed)
  if seed == nil then seed = os.time() ~ math.floor(os.clock() * 1e6) end
  if math.type(seed) ~= "integer" then
    local integer = type(seed) == "number" and math.tointeger(seed) or nil
    if not integer then fail("seed must be an integer, got %s", tostring(seed)) end
    seed = integer
  end
  local s, st = {}, seed
  for i = 1, 4 do st, s[i] = splitmix(st) end
  return setmetatable({ s = s }, Rng)
end

--- rng:next64(): the next 64 random bits, as an integer.
function Rng:next64()
  local s = self.s
  local result = rotl(s[2] * 5, 7) * 9
  local t = s[2] << 17
  s[3] = s[3] ~ s[1]
  s[4] = s[4] ~ s[2]
  s[2] = s[2] ~ s[3]
  s[1] = s[1] ~ s[4]
  s[3] = s[3] ~ t
  s[4] = rotl(s[4], 45)
  return result
end

--- rng:random(): a float in [0, 1) from the top 53 bits (exact on every platform).
function Rng:random() return (self:next64() >> 11) * 0x1p-53 end

--- rng:int(a, b): an integer in [a, b].
function Rng:int(a, b) return a + math.floor(self:random() * (b - a + 1)) end

--- rng:normal(): a standard normal deviate (Box-Muller).
function Rng:normal()
  return math.sqrt(-2 * math.log(1 - self:random())) * math.cos(2 * math.pi * self:random())
end

local function as_rng(rng)
  if rng == nil then return M.rng() end
  if getmetatable(rng) == Rng then return rng end
  if type(rng) == "number" then return M.rng(rng) end
  fail("expected a generator from search.rng(seed) or an integer seed, got a %s", type(rng))
end

---------------------------------------------------------------------------------------------------
-- Dimensions. Each numeric one has an internal coordinate in which it is uniform and continuous
-- (log for log scales, +-0.5 around integer ranges): mutation and the Parzen estimators work there.

local Dim = {}
Dim.__index = Dim
Dim.__tostring = function(d) return d.text end

local function number_arg(what, v, name)
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
    fail("%s: %s must be a finite number, got %s", what, name, tostring(v))
  end
end

local function range(kind, low, high, log, integer)
  local what = ("search.%s(%s, %s)"):format(kind, tostring(low), tostring(high))
  number_arg(what, low, "low")
  number_arg(what, high, "high")
  if integer and (low ~= math.floor(low) or high ~= math.floor(high)) then fail("%s: bounds must be integers", what) end
  if not (low < high) then fail("%s: low must be below high", what) end
  if log and low <= 0 then fail("%s: a log scale needs low > 0", what) end
  if integer then low, high = math.tointeger(low), math.tointeger(high) end
  local ilow, ihigh = low, high
  if integer then ilow, ihigh = low - 0.5, high + 0.5 end
  if log then ilow, ihigh = math.log(ilow), math.log(ihigh) end
  return setmetatable({ kind = kind, low = low, high = high, log = log, integer = integer,
    ilow = ilow, ihigh = ihigh, text = what }, Dim)
end

--- search.uniform(low, high): a float in [low, high].
function M.uniform(low, high) return range("uniform", low, high, false, false) end
--- search.loguniform(low, high): a float in [low, high], uniform in log scale (low > 0).
function M.loguniform(low, high) return range("loguniform", low, high, true, false) end
--- search.int(low, high [, { log = true }]): an integer in [low, high].
function M.int(low, high, opts)
  local log = type(opts) == "table" and opts.log == true
  return range(log and "logint" or "int", low, high, log, true)
end
--- search.logint(low, high): an integer in [low, high], uniform in log scale.
function M.logint(low, high) return range("logint", low, high, true, true) end

--- search.choice{ a, b, ... }: one of the values (strings, numbers, booleans).
function M.choice(list)
  if type(list) ~= "table" or #list == 0 then fail("search.choice expects a non-empty list of values") end
  local texts = {}
  for i, v in ipairs(list) do
    local t = type(v)
    if t ~= "string" and t ~= "number" and t ~= "boolean" then
      fail("search.choice: value %d is a %s (strings, numbers and booleans only)", i, t)
    end
    texts[i] = t == "string" and ("%q"):format(v) or tostring(v)
  end
  return setmetatable({ kind = "choice", choices = table.move(list, 1, #list, 1, {}),
    text = "search.choice{" .. table.concat(texts, ", ") .. "}" }, Dim)
end

function Dim:to_internal(v)
  if self.kind == "choice" then
    for i, c in ipairs(self.choices) do
      if c == v then return i end
    end
    return nil
  end
  return self.log and math.log(v) or v
end

function Dim:from_internal(u)
  if self.kind == "choice" then return self.choices[u] end
  local v = self.log and math.exp(u) or u
  if self.integer then v = math.floor(v + 0.5) end
  v = math.min(math.max(v, self.low), self.high)
  return self.integer and math.tointeger(v) or v
end

function Dim:sample_internal(rng)
  if self.kind == "choice" then return rng:int(1, #self.choices) end
  return self.ilow + rng:random() * (self.ihigh - self.ilow)
end

-- nil when v belongs to the dimension, otherwise what is wrong with it.
function Dim:check(v)
  if self.kind == "choice" then
    if self:to_internal(v) then return nil end
    return "is not one of " .. self.text
  end
  if type(v) ~= "number" then return ("is a %s, not a number in %s"):format(type(v), self.text) end
  if self.integer and math.type(v) ~= "integer" and v ~= math.floor(v) then return "is not an integer: " .. self.text end
  if not (v >= self.low and v <= self.high) then return "is out of range: " .. self.text end
  return nil
end

---------------------------------------------------------------------------------------------------
-- Spaces: a tree of dimensions and constants, flattened into a sorted list of leaves.

local Space = {}
Space.__index = Space

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) ~= type(b) then return type(a) == "number" end
    return a < b
  end)
  return keys
end

local function flatten(tree, path, name, dims, consts)
  for _, k in ipairs(sorted_keys(tree)) do
    local v = tree[k]
    local p = table.move(path, 1, #path, 1, {})
    p[#p + 1] = k
    local n = name == "" and tostring(k) or name .. "." .. tostring(k)
    if getmetatable(v) == Dim then dims[#dims + 1] = { path = p, name = n, dim = v }
    elseif type(v) == "table" and getmetatable(v) == nil then flatten(v, p, n, dims, consts)
    elseif type(v) == "string" or type(v) == "number" or type(v) == "boolean" then
      consts[#consts + 1] = { path = p, name = n, value = v }
    else
      fail("search.space: %s is a %s (dimensions, nested tables and constants only)", n, type(v))
    end
  end
end

--- search.space{ name = dimension | constant | nested table, ... }
function M.space(tree)
  if getmetatable(tree) == Space then return tree end
  if type(tree) ~= "table" then fail("search.space expects a table of dimensions, got a %s", type(tree)) end
  local dims, consts = {}, {}
  flatten(tree, {}, "", dims, consts)
  return setmetatable({ dims = dims, consts = consts }, Space)
end

local function get_path(t, path)
  for _, k in ipairs(path) do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  return t
end

local function set_path(t, path, v)
  for i = 1, #path - 1 do
    local k = path[i]
    t[k] = t[k] or {}
    t = t[k]
  end
  t[path[#path]] = v
end

--- space:build(values): the parameters whose i-th dimension takes values[i] (plus the constants).
function Space:build(values)
  local params = {}
  for _, c in ipairs(self.consts) do set_path(params, c.path, c.value) end
  for i, d in ipairs(self.dims) do set_path(params, d.path, values[i]) end
  return params
end

--- space:sample(rng): a random point; rng from search.rng(seed), or an integer seed.
function Space:sample(rng)
  rng = as_rng(rng)
  local values = {}
  for i, d in ipairs(self.dims) do values[i] = d.dim:from_internal(d.dim:sample_internal(rng)) end
  return self:build(values)
end

-- nil when params is a point of the space, otherwise the message that says why not.
function Space:check(params)
  if type(params) ~= "table" then return ("parameters must be a table, got a %s"):format(type(params)) end
  local known = {}
  for _, d in ipairs(self.dims) do
    local v = get_path(params, d.path)
    if v == nil then return ("params.%s is missing (%s)"):format(d.name, d.dim.text) end
    local why = d.dim:check(v)
    if why then return ("params.%s = %s %s"):format(d.name, tostring(v), why) end
    known[d.name] = true
  end
  for _, c in ipairs(self.consts) do
    local v = get_path(params, c.path)
    if v ~= c.value then return ("params.%s = %s, the space fixes it to %s"):format(c.name, tostring(v), tostring(c.value)) end
    known[c.name] = true
  end
  local function extra(t, name)
    for k, v in pairs(t) do
      local n = name == "" and tostring(k) or name .. "." .. tostring(k)
      if not known[n] then
        if type(v) ~= "table" then return ("params.%s is not in the space"):format(n) end
        local why = extra(v, n)
        if why then return why end
      end
    end
  end
  return extra(params, "")
end

--- space:validate(params): returns params, or raises an error naming the key and the range.
function Space:validate(params)
  local why = self:check(params)
  if why then fail("validate: %s", why) end
  return params
end

-- The internal coordinates of a point (it was checked).
function Space:internal(params)
  local u = {}
  for i, d in ipairs(self.dims) do u[i] = d.dim:to_internal(get_path(params, d.path)) end
  return u
end

function Space:from_internal(u)
  local values = {}
  for i, d in ipairs(self.dims) do values[i] = d.dim:from_internal(u[i]) end
  return self:build(values)
end

---------------------------------------------------------------------------------------------------
-- Strategies: random, regularized evolution, TPE. Each has propose(rng) -> internal point and
-- tell(u, score) for a finished job (score: higher is better; nil for a failure).

local Random = {}
Random.__index = Random

function Random.new(space) return setmetatable({ space = space }, Random) end

function Random:random_point(rng)
  local u = {}
  for i, d in ipairs(self.space.dims) do u[i] = d.dim:sample_internal(rng) end
  return u
end
Random.propose = Random.random_point
function Random:tell() end

-- Regularized (aging) evolution, Real et al. 2019, as DeepHyper's RegularizedEvolution: the
-- population is the last population_size finished jobs (the oldest leaves); a child is the best of
-- sample_size members drawn at random, with one dimension drawn again from its prior.
local Evolution = setmetatable({}, { __index = Random })
Evolution.__index = Evolution

function Evolution.new(space, opts)
  return setmetatable({ space = space, population = {}, population_size = opts.population_size or 100,
    sample_size = opts.sample_size or 10 }, Evolution)
end

function Evolution:tell(u, score)
  if not score then return end -- a failure never enters the population
  local pop = self.population
  pop[#pop + 1] = { u = u, score = score }
  if #pop > self.population_size then table.remove(pop, 1) end
end

function Evolution:propose(rng)
  local pop = self.population
  if #pop < self.population_size or #self.space.dims == 0 then return self:random_point(rng) end
  local parent
  for _ = 1, math.min(self.sample_size, #pop) do
    local m = pop[rng:int(1, #pop)]
    if not parent or m.score > parent.score then parent = m end
  end
  local child = table.move(parent.u, 1, #parent.u, 1, {})
  local i = rng:int(1, #child)
  local dim = self.space.dims[i].dim
  -- a new value: one that maps to another point where the dimension has more than one
  for _ = 1, 16 do
    child[i] = dim:sample_internal(rng)
    if dim:from_internal(child[i]) ~= dim:from_internal(parent.u[i]) then break end
  end
  return child
end

-- TPE, as Optuna's TPESampler with its defaults (Bergstra et al. 2011; Watanabe 2023): after
-- n_startup random points, the finished jobs are split into the best gamma(n) = min(ceil(0.1 n), 25)
-- ("below", l) and the rest ("above", g); each dimension gets a Parzen estimator for l and for g: a
-- mixture of truncated normals, one per observation (weighted, newer ones heavier past 25) plus a
-- prior (the whole range's middle and width), bandwidths from the neighbours' distances, clipped
-- to [range / min(100, 1 + n), range]; categorical dimensions get weighted counts plus a uniform
-- prior. n_ei_candidates points drawn from l; the one with the largest l(x) / g(x) is proposed.
local Tpe = setmetatable({}, { __index = Random })
Tpe.__index = Tpe

local SQRT2 = math.sqrt(2)
local SQRT_2PI = math.sqrt(2 * math.pi)

-- erfc with a fractional error below 1.2e-7 (Numerical Recipes' erfcc, Chebyshev fit).
local function erfc(x)
  local z = math.abs(x)
  local t = 1 / (1 + 0.5 * z)
  local r = t * math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
  return x >= 0 and r or 2 - r
end
local function phi_cdf(x) return 0.5 * erfc(-x / SQRT2) end

local function default_weights(n)
  local w = {}
  if n < 25 then
    for i = 1, n do w[i] = 1 end
  else
    local ramp = n - 25
    for i = 1, ramp do w[i] = ramp == 1 and 1 / n or 1 / n + (1 - 1 / n) * (i - 1) / (ramp - 1) end
    for i = ramp + 1, n do w[i] = 1 end
  end
  return w
end

-- The Parzen estimator of one numeric dimension over observations xs (internal coordinates) with
-- weights ws: mixture weights, means, bandwidths and truncation masses.
local function numeric_estimator(low, high, xs, ws)
  local n, width = #xs, high - low
  local order = {}
  for i = 1, n do order[i] = i end
  table.sort(order, function(a, b) return xs[a] < xs[b] end)
  local mus, sigmas, weights = {}, {}, {}
  local min_sigma = width / math.min(100, 1 + n)
  for r, i in ipairs(order) do
    local left = r > 1 and xs[order[r - 1]] or low
    local right = r < n and xs[order[r + 1]] or high
    mus[i] = xs[i]
    sigmas[i] = math.min(math.max(xs[i] - left, right - xs[i], min_sigma), width)
    weights[i] = ws[i]
  end
  mus[n + 1], sigmas[n + 1], weights[n + 1] = 0.5 * (low + high), width, 1.0 -- the prior
  -- the prior's bandwidth spans the range, so the mixture's density never underflows: no log-sum-exp
  local total, coef, inv = 0, {}, {}
  for i = 1, n + 1 do total = total + weights[i] end
  for i = 1, n + 1 do
    weights[i] = weights[i] / total
    local mass = phi_cdf((high - mus[i]) / sigmas[i]) - phi_cdf((low - mus[i]) / sigmas[i])
    coef[i] = weights[i] / (sigmas[i] * SQRT_2PI * math.max(mass, 1e-300))
    inv[i] = 1 / sigmas[i]
  end
  return { low = low, high = high, mus = mus, sigmas = sigmas, weights = weights, coef = coef, inv = inv }
end

local function pick(weights, rng)
  local r, acc = rng:random(), 0
  for i, w in ipairs(weights) do
    acc = acc + w
    if r < acc then return i end
  end
  return #weights
end

local function numeric_sample(e, rng)
  local k = pick(e.weights, rng)
  for _ = 1, 100 do -- truncated normal by rejection: mus lie in range, so most draws land in it
    local x = e.mus[k] + e.sigmas[k] * rng:normal()
    if x >= e.low and x <= e.high then return x end
  end
  return e.low + rng:random() * (e.high - e.low)
end

local function numeric_log_pdf(e, x)
  local mus, coef, inv, exp, sum = e.mus, e.coef, e.inv, math.exp, 0
  for i = 1, #mus do
    local z = (x - mus[i]) * inv[i]
    sum = sum + coef[i] * exp(-0.5 * z * z)
  end
  return math.log(sum)
end

-- Categorical: each observation is a kernel with prior_weight / n_kernels spread over every
-- choice plus 1 on its own; the prior kernel is uniform (Optuna's _calculate_categorical_params).
local function categorical_estimator(n_choices, xs, ws)
  local n = #xs
  local probs, total = {}, 1.0
  for i = 1, n do total = total + ws[i] end
  local spread = 1.0 / (n + 1)
  for c = 1, n_choices do probs[c] = (1.0 / total) / n_choices end
  for i = 1, n do
    local wk = ws[i] / total / (1 + n_choices * spread)
    for c = 1, n_choices do probs[c] = probs[c] + wk * (spread + (xs[i] == c and 1 or 0)) end
  end
  return { probs = probs }
end

function Tpe.new(space, opts)
  return setmetatable({ space = space, observations = {}, n_startup = opts.n_startup or 10,
    n_candidates = opts.n_ei_candidates or 24 }, Tpe)
end

-- A failed job counts as the worst observation (it goes to g): ignoring failures, as Optuna does,
-- makes a region that always fails look unexplored, hence attractive, for ever.
function Tpe:tell(u, score)
  local obs = self.observations
  obs[#obs + 1] = { u = u, score = score or -math.huge, n = #obs }
  if score then self.n_success = (self.n_success or 0) + 1 end
end

-- The estimators of dimension i over a set of observations (in the order they finished).
local function estimator(dim, i, set)
  local xs, ws = {}, default_weights(#set)
  for j, o in ipairs(set) do xs[j] = o.u[i] end
  if dim.kind == "choice" then return categorical_estimator(#dim.choices, xs, ws) end
  return numeric_estimator(dim.ilow, dim.ihigh, xs, ws)
end

function Tpe:split()
  local obs = table.move(self.observations, 1, #self.observations, 1, {})
  table.sort(obs, function(a, b)
    if a.score ~= b.score then return a.score > b.score end
    return a.n < b.n
  end)
  local n_below = math.min(math.ceil(0.1 * #obs), 25, self.n_success or 0)
  local below, above = table.move(obs, 1, n_below, 1, {}), table.move(obs, n_below + 1, #obs, 1, {})
  local by_age = function(a, b) return a.n < b.n end
  table.sort(below, by_age)
  table.sort(above, by_age)
  return below, above
end

-- The estimators l and g of every dimension; kept while no job comes back, since several
-- points are proposed at once when several jobs came back together.
function Tpe:model()
  local n = #self.observations
  if self.model_n ~= n then
    local below, above = self:split()
    local l, g = {}, {}
    for i, d in ipairs(self.space.dims) do l[i], g[i] = estimator(d.dim, i, below), estimator(d.dim, i, above) end
    self.l, self.g, self.model_n = l, g, n
  end
  return self.l, self.g
end

function Tpe:propose(rng)
  if #self.observations < self.n_startup or not self.n_success then return self:random_point(rng) end
  local ls, gs = self:model()
  local u = {}
  for i, d in ipairs(self.space.dims) do
    local l, g = ls[i], gs[i]
    local best, best_score = nil, -math.huge
    for _ = 1, self.n_candidates do
      local x, s
      if d.dim.kind == "choice" then
        x = pick(l.probs, rng)
        s = math.log(l.probs[x]) - math.log(g.probs[x])
      else
        x = numeric_sample(l, rng)
        s = numeric_log_pdf(l, x) - numeric_log_pdf(g, x)
      end
      if s > best_score then best, best_score = x, s end
    end
    u[i] = best
  end
  return u
end

---------------------------------------------------------------------------------------------------
-- The driver: keeps every worker busy (gather("BATCH", 1) and as many new points as came back).

local OPTIONS = {
  max_evals = true, timeout = true, seed = true, maximize = true, csv = true, initial_points = true,
  population_size = "evolution", sample_size = "evolution", n_startup = "tpe", n_ei_candidates = "tpe",
}

local function check_options(name, opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then fail("search.%s: opts must be a table, got a %s", name, type(opts)) end
  for k in pairs(opts) do
    local ok = OPTIONS[k]
    if not ok then
      local keys = sorted_keys(OPTIONS)
      fail("search.%s: unknown option '%s' (options: %s)", name, tostring(k), table.concat(keys, ", "))
    elseif ok ~= true and ok ~= name then
      fail("search.%s: option '%s' is for search.%s", name, k, ok)
    end
  end
  local function positive(key, integer)
    local v = opts[key]
    if v ~= nil and (type(v) ~= "number" or v <= 0 or (integer and v ~= math.floor(v))) then
      fail("search.%s: %s must be a positive %s, got %s", name, key, integer and "integer" or "number", tostring(v))
    end
  end
  for _, k in ipairs({ "max_evals", "population_size", "sample_size", "n_startup", "n_ei_candidates" }) do positive(k, true) end
  positive("timeout")
  if opts.max_evals == nil and opts.timeout == nil then
    fail("search.%s: give max_evals or timeout (or both): the search must end", name)
  end
  if opts.csv ~= nil and opts.csv ~= true and type(opts.csv) ~= "string" then
    fail("search.%s: csv must be a file name or true (results.csv), got a %s", name, type(opts.csv))
  end
  if opts.initial_points ~= nil and type(opts.initial_points) ~= "table" then
    fail("search.%s: initial_points must be a list of parameter tables", name)
  end
  return opts
end

-- The score of a job (higher is better) or nil when it failed.
local function score_of(job, maximize, name)
  local o = job.objective
  if type(o) == "table" then
    fail("search.%s: job %s has %d objectives; the drivers optimise one number", name, tostring(job.id), #o)
  end
  if type(o) ~= "number" or o ~= o then return nil end
  return maximize and o or -o
end

local function callbacks_of(ev)
  return rawget(ev, "_callbacks") or {}
end

local function notify(cbs, hook, ...)
  for _, cb in ipairs(cbs) do
    if cb[hook] then cb[hook](cb, ...) end
  end
end

local function stopped(cbs)
  for _, cb in ipairs(cbs) do
    if cb.search_stopped then return true end
  end
  return false
end

local function csv_target(csv)
  if not csv then return nil end
  local path = csv == true and "results.csv" or csv
  local dir, file = path:match("^(.*)/([^/]+)$")
  if not dir then return ".", path end
  return dir == "" and "/" or dir, file
end

-- One run of a driver: the evaluator, the space, the strategy and what came back so far.
local Run = {}
Run.__index = Run

local function new_run(name, Strategy, ev, space, opts)
  if type(ev) ~= "table" or type(ev.submit) ~= "function" then
    fail("search.%s: the first argument must be an evaluator (from evaluator.create), got a %s", name, type(ev))
  end
  space = M.space(space)
  opts = check_options(name, opts)
  local initial = {}
  for i, p in ipairs(opts.initial_points or {}) do
    local why = space:check(p)
    if why then fail("search.%s: initial_points[%d]: %s", name, i, why) end
    initial[i] = p
  end
  local dir, file = csv_target(opts.csv)
  return setmetatable({ name = name, ev = ev, space = space, opts = opts, maximize = opts.maximize ~= false,
    initial = initial, rng = M.rng(opts.seed or nil), strategy = Strategy.new(space, opts),
    max_evals = opts.max_evals and math.tointeger(opts.max_evals) or math.maxinteger, cbs = callbacks_of(ev),
    csv_dir = dir, csv_file = file, jobs = {}, best = nil, best_score = nil, submitted = 0, in_flight = 0 }, Run)
end

-- Submits up to n points (initial points first) unless the search is over.
function Run:submit(n)
  local ev = self.ev
  n = math.min(n, self.max_evals - self.submitted)
  if n <= 0 or stopped(self.cbs) or (ev.time_left ~= nil and ev.time_left <= 0) then return end
  local list = {}
  for i = 1, n do
    list[i] = table.remove(self.initial, 1) or self.space:from_internal(self.strategy:propose(self.rng))
  end
  local ok, err = pcall(ev.submit, ev, list)
  if not ok then
    if tostring(err):find("TimeoutReached", 1, true) then return end
    error(err, 0)
  end
  self.submitted, self.in_flight = self.submitted + n, self.in_flight + n
end

-- Takes finished jobs: the strategy learns from them, the best is kept.
function Run:take(done)
  self.in_flight = self.in_flight - #done
  for _, job in ipairs(done) do
    self.jobs[#self.jobs + 1] = job
    local s = job.status == "DONE" and score_of(job, self.maximize, self.name) or nil
    if self.space:check(job.parameters) == nil then self.strategy:tell(self.space:internal(job.parameters), s) end
    if s and (self.best_score == nil or s > self.best_score) then self.best, self.best_score = job, s end
  end
  if self.csv_dir then self.ev:dump_jobs_done_to_csv(self.csv_dir, self.csv_file) end
end

local function drive(name, Strategy, ev, space, opts)
  local run = new_run(name, Strategy, ev, space, opts)
  if run.opts.timeout then ev:set_timeout(run.opts.timeout) end
  notify(run.cbs, "on_search_begin", { driver = name, max_evals = run.opts.max_evals, timeout = run.opts.timeout,
    maximize = run.maximize })
  run:submit(ev.num_workers or 1)
  while run.in_flight > 0 do
    local done = ev:gather("BATCH", 1)
    run:take(done)
    run:submit(#done)
  end
  notify(run.cbs, "on_search_end", run.best, run.jobs)
  return run.best, run.jobs
end

--- search.random(ev, space, opts): random search; returns the best job and the list of jobs.
function M.random(ev, space, opts) return drive("random", Random, ev, space, opts) end
--- search.evolution(ev, space, opts): regularized evolution (opts.population_size, opts.sample_size).
function M.evolution(ev, space, opts) return drive("evolution", Evolution, ev, space, opts) end
--- search.tpe(ev, space, opts): the Tree-structured Parzen Estimator (opts.n_startup, opts.n_ei_candidates).
function M.tpe(ev, space, opts) return drive("tpe", Tpe, ev, space, opts) end

return M
