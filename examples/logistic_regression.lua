-- logistic_regression.lua: a hyperparameter search (TPE) of a small model written in Lua: logistic
-- regression trained by mini-batch gradient descent on data generated with a fixed seed; the
-- objective is the validation accuracy. Every rank builds the same data (same seed).
-- Run: mpirun -np 3 evaluator-lua examples/logistic_regression.lua [max_evals]
local evaluator = require "evaluator"
local search = require "evaluator.search"
local callbacks = require "evaluator.callbacks"

local MAX_EVALS = tonumber(arg[1]) or 60
local FEATURES, N_TRAIN, N_VALID = 8, 400, 200

-- Two classes in 8 dimensions: a hidden linear rule, a little label noise.
local function make_data(rng)
  local w_true = {}
  for j = 1, FEATURES do w_true[j] = rng:normal() end
  local function draw(n)
    local xs, ys = {}, {}
    for i = 1, n do
      local x, s = {}, 0
      for j = 1, FEATURES do x[j] = rng:normal(); s = s + x[j] * w_true[j] end
      xs[i], ys[i] = x, (s + 0.5 * rng:normal() > 0) and 1 or 0
    end
    return xs, ys
  end
  local train_x, train_y = draw(N_TRAIN)
  local valid_x, valid_y = draw(N_VALID)
  return train_x, train_y, valid_x, valid_y
end
local train_x, train_y, valid_x, valid_y = make_data(search.rng(2024))

local function predict(w, b, x)
  local s = b
  for j = 1, FEATURES do s = s + w[j] * x[j] end
  return 1 / (1 + math.exp(-s))
end

-- Train with the job's hyperparameters; return the validation accuracy.
local function run(job)
  local p = job.parameters
  local w, b = {}, 0
  for j = 1, FEATURES do w[j] = 0 end
  local order = {}
  for i = 1, N_TRAIN do order[i] = i end
  local rng = search.rng(p.seed)
  for _ = 1, p.epochs do
    for i = N_TRAIN, 2, -1 do -- shuffle
      local k = rng:int(1, i)
      order[i], order[k] = order[k], order[i]
    end
    for start = 1, N_TRAIN, p.batch do
      local gw, gb, n = {}, 0, 0
      for j = 1, FEATURES do gw[j] = 0 end
      for t = start, math.min(start + p.batch - 1, N_TRAIN) do
        local i = order[t]
        local err = predict(w, b, train_x[i]) - train_y[i]
        for j = 1, FEATURES do gw[j] = gw[j] + err * train_x[i][j] end
        gb, n = gb + err, n + 1
      end
      for j = 1, FEATURES do w[j] = w[j] - p.lr * (gw[j] / n + p.l2 * w[j]) end
      b = b - p.lr * gb / n
    end
  end
  local correct = 0
  for i = 1, N_VALID do
    if (predict(w, b, valid_x[i]) > 0.5 and 1 or 0) == valid_y[i] then correct = correct + 1 end
  end
  return correct / N_VALID
end

local space = search.space{
  lr = search.loguniform(1e-4, 1), l2 = search.loguniform(1e-6, 1), batch = search.logint(4, 256),
  epochs = search.int(1, 10), seed = 7,
}

local ev <close> = evaluator.create(run, "mpicomm", { callbacks = { callbacks.Progress() } })
if ev then
  local best = search.tpe(ev, space, { max_evals = MAX_EVALS, seed = 1, csv = "results.csv" })
  local p = best.parameters
  print(("best validation accuracy %.3f: lr = %.3g, l2 = %.3g, batch = %d, epochs = %d"):format(best.objective,
    p.lr, p.l2, p.batch, p.epochs))
end
