-- empty.lua: the start-up benchmark's script: it only loads the module.
require "evaluator"
