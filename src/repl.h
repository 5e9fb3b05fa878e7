/* repl.h: the interactive prompt of `evaluator-lua -i` (lua.c's read-eval-print loop, on one rank). */
#ifndef EVL_REPL_H
#define EVL_REPL_H

#include <lua.h>

/* Read lines from standard input and run them in L until end of file, as the lua interpreter
 * does: an expression prints its values, an incomplete statement asks for more (_PROMPT2), an error
 * is printed and the loop goes on. Prompts are _PROMPT and _PROMPT2 (default "> " and ">> "). */
void repl_run(lua_State *L);

#endif
