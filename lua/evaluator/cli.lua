-- evaluator.cli: the evaluator-lua subcommands that read and write files instead of running a
-- script on ranks (no MPI):
--   evaluator-lua plot results.csv -o run.png
--   evaluator-lua export STORAGE --search-id ID -o results.csv
-- main(name, ...) returns the exit status; an error's message is printed by the C side.
local M = {}

M.commands = { plot = "evaluator.plot", export = "evaluator.export" }

function M.main(name, ...)
  local module = M.commands[name]
  if not module then error(("unknown subcommand '%s'"):format(tostring(name)), 0) end
  return require(module).main({ ... }) or 0
end

return M
