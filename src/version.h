/* version.h: the release of evaluator-lua, printed by --version. */
#define EVL_VERSION "0.1.0"
