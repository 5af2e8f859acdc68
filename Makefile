# FuseMoE-C build.
#   make            build/fusemoe and build/libfusemoe.a
#   make test       install missing packages, build, run the Check suite
#   make demo       install missing packages, build, run the synthetic end-to-end demo
#   make asan       the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      benchmarks (never part of pass/fail)
#   make deps       install missing Debian packages with apt-get

BUILD    ?= build
CC       ?= gcc
PKGS     := openblas hdf5 check libpng inih libcjson cairo
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation
OPTFLAGS ?= -O2 -g
CFLAGS   := $(OPTFLAGS) -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -I. $(PKG_CFLAGS) -MMD -MP
LDLIBS   := $(PKG_LIBS) -lcsv -lm -lpthread
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRC  := $(wildcard src/*.c preprocessing/*.c models/*.c data/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SUPPORT_SRC := $(wildcard tests/support/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SUPPORT_OBJ := $(TEST_SUPPORT_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
LIB      := $(BUILD)/libfusemoe.a
CLI      := $(BUILD)/fusemoe

.PHONY: all deps test check-tests asan bench demo clean format
.DELETE_ON_ERROR:
.SECONDARY:

all: $(CLI) $(LIB)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	@echo "  AR  $@"
	@ar rcs $@ $^

$(CLI): $(CLI_OBJ) $(LIB)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_SUPPORT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) -o $@ $< $(TEST_SUPPORT_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS)

deps:
	@sh scripts/install-deps.sh

# Each suite is its own Check binary; the runner reports every failing suite and fails if any did.
check-tests: $(TEST_BIN) $(CLI)
	@sh scripts/run-tests.sh $(TEST_BIN)

test: deps
	@$(MAKE) --no-print-directory check-tests

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPTFLAGS="-O1 -g $(SANITIZE)" check-tests

bench: deps
	@$(MAKE) --no-print-directory $(BENCH_BIN) $(CLI)
	@sh scripts/run-bench.sh $(BENCH_BIN)

demo: deps
	@$(MAKE) --no-print-directory $(CLI)
	@sh scripts/demo.sh

format:
	clang-format -i $(LIB_SRC) $(CLI_SRC) $(TEST_SRC) $(TEST_SUPPORT_SRC) $(BENCH_SRC) $(wildcard src/*.h src/cli/*.h preprocessing/*.h models/*.h data/*.h tests/support/*.h)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
