# evaluator-lua: build, install, test, demo, bench.
#   make                      build build/evaluator-lua
#   make install PREFIX=dir   dir/bin/evaluator-lua (Lua modules are compiled in), the man page
#                             dir/share/man/man1/evaluator-lua.1, README.md and docs/API.md in
#                             dir/share/doc/evaluator-lua/
#   make test | demo | bench | clean
PREFIX ?= /usr/local
CC = mpicc
LUA ?= lua5.4
SAN ?=
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -Isrc -I$(BUILD) $(shell pkg-config --cflags lua5.4) $(SAN)
LDLIBS = $(shell pkg-config --libs lua5.4) -llua5.4-cjson -lsqlite3 -lhiredis -lm -pthread $(SAN)

BUILD ?= build
SRCS = $(wildcard src/*.c)
OBJS = $(patsubst src/%.c,$(BUILD)/%.o,$(SRCS)) $(BUILD)/embedded.o
LUA_MODULES = $(wildcard lua/evaluator/*.lua)
BIN = $(BUILD)/evaluator-lua
export OMPI_ALLOW_RUN_AS_ROOT = 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = 1

.PHONY: all install test demo bench clean deps san
all: $(BIN)

deps:
	@bash scripts/install-deps.sh

$(BIN): $(OBJS)
	$(CC) -o $@ $(OBJS) $(LDLIBS)

$(BUILD)/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/embedded.c: $(LUA_MODULES) scripts/embed.lua | $(BUILD)
	$(LUA) scripts/embed.lua $@ lua $(LUA_MODULES)

$(BUILD)/embedded.o: $(BUILD)/embedded.c src/embedded.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD):
	mkdir -p $(BUILD)

# The same binary under AddressSanitizer and UndefinedBehaviorSanitizer, in build-san/.
san:
	@$(MAKE) --no-print-directory BUILD=build-san SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" all

install: $(BIN)
	install -d $(PREFIX)/bin $(PREFIX)/share/evaluator-lua/examples
	install -m 755 $(BIN) $(PREFIX)/bin/evaluator-lua
	install -m 644 examples/*.lua $(PREFIX)/share/evaluator-lua/examples/
	install -d $(PREFIX)/share/doc/evaluator-lua $(PREFIX)/share/man/man1
	install -m 644 README.md docs/API.md $(PREFIX)/share/doc/evaluator-lua/
	install -m 644 docs/evaluator-lua.1 $(PREFIX)/share/man/man1/evaluator-lua.1

test: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/run-tests.sh

demo: deps
	@$(MAKE) --no-print-directory all
	timeout 300 mpirun --oversubscribe -np 4 $(BIN) examples/ackley.lua tpe 200
	timeout 60 $(BIN) plot results.csv -o run.png
	@echo "results: $(CURDIR)/results.csv, picture of the run: $(CURDIR)/run.png"

bench: deps
	@$(MAKE) --no-print-directory all
	@bash bench/run.sh

clean:
	rm -rf build build-san results.csv run.png
