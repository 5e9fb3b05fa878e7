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

.PHONY: all install test demo bench clean deps san unit tsan
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

# The same binary under AddressSanitizer and UndefinedBehaviorSanitizer (float-cast-overflow too;
# every report is fatal), in build-san/; scripts/san-tests.sh runs specs against it.
SAN_FLAGS = -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer
san:
	@$(MAKE) --no-print-directory BUILD=build-san SAN="$(SAN_FLAGS)" all

# The same binary under ThreadSanitizer, in build-tsan/; scripts/tsan-stress.sh runs it.
tsan:
	@$(MAKE) --no-print-directory BUILD=build-tsan SAN="-fsanitize=thread -fno-omit-frame-pointer" all

# C unit tests of the codecs (tests/c/), one binary per codec plus a replay of each fuzz target's
# corpus and regression inputs, all under AddressSanitizer and UndefinedBehaviorSanitizer (a report,
# a leak included, fails the binary). `make unit` builds and runs them: one "N passed, N failed" line.
UNIT_CC ?= cc
UNIT_FLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -pthread -Isrc -Itests/c $(shell pkg-config --cflags lua5.4) \
  -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer
UNIT_LIBS = $(shell pkg-config --libs lua5.4) -lm -pthread
UNIT_SRCS_wire = src/wire.c src/buf.c src/storage_job.c
UNIT_SRCS_json = src/json.c src/numfmt.c src/buf.c
UNIT_SRCS_csv = src/csv.c src/buf.c
UNIT_SRCS_numfmt = src/numfmt.c
UNIT_SRCS_jobq = src/jobq.c src/wire.c src/buf.c
UNIT_SRCS_journal = src/storage_journal.c src/buf.c src/clock.c
UNIT_LDFLAGS_csv = -Wl,--wrap=pread
FUZZ_TARGETS = wire json csv
UNIT_BINS = $(patsubst %,build/unit/test_%,wire json csv numfmt jobq journal) $(patsubst %,build/unit/replay_%,$(FUZZ_TARGETS))

build/unit/test_%: tests/c/test_%.c tests/c/check.c tests/c/check.h $(wildcard src/*.h src/*.c) | build/unit
	$(UNIT_CC) $(UNIT_FLAGS) -o $@ $< tests/c/check.c $(UNIT_SRCS_$*) $(UNIT_LIBS) $(UNIT_LDFLAGS_$*)

build/unit/replay_%: fuzz/fuzz_%.c fuzz/fuzz.h tests/c/replay.c tests/c/check.c $(wildcard src/*.h src/*.c) | build/unit
	$(UNIT_CC) $(UNIT_FLAGS) -Ifuzz -o $@ $< tests/c/replay.c tests/c/check.c $(UNIT_SRCS_$*) $(UNIT_LIBS)

build/unit:
	mkdir -p build/unit

unit: $(UNIT_BINS)
	@bash scripts/run-unit.sh $(FUZZ_TARGETS)

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
	rm -rf build build-san build-tsan results.csv run.png
