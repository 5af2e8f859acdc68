# FuseMoE-C build.
#   make            build/fusemoe and build/libfusemoe.a
#   make test       install missing packages, build, run the Check suite
#   make demo       install missing packages, build, run the synthetic end-to-end demo
#   make p12        the PhysioNet 2012 results from the raw files (scripts/p12.sh; about 1 h 40 min on 2 cores)
#   make asan       the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      benchmarks (never part of pass/fail)
#   make deps       install missing Debian packages with apt-get
#   make MPI=1      the MPI-enabled program in build-mpi/ (OpenMPI: make deps-mpi installs it)
#   make test-mpi   install OpenMPI if missing, build with MPI=1, run the MPI suites under mpirun

MPI      ?= 0
ifeq ($(MPI),1)
BUILD    ?= build-mpi
else
BUILD    ?= build
endif
CC       ?= gcc
PKGS     := openblas hdf5 check libpng inih libcjson cairo fontconfig
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation
OPTFLAGS ?= -O2 -g
CFLAGS   = $(OPTFLAGS) -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -I. $(PKG_CFLAGS) $(CFLAGS_MPI) -MMD -MP
LDLIBS   = $(PKG_LIBS) $(LIBS_MPI) -lcsv -lm -lpthread
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRC  := $(wildcard src/*.c preprocessing/*.c models/*.c data/*.c)
# MPI builds: the communication layer (src/mpi/), FM_WITH_MPI for the CLI's start-up, the MPI
# suites (tests/mpi/test_*.c) and their MPI helper programs (tests/mpi/prog_*.c).
ifeq ($(MPI),1)
MPI_PKG  := $(shell pkg-config --exists ompi-c 2>/dev/null && echo ompi-c || echo mpi)
CFLAGS_MPI := -DFM_WITH_MPI $(shell pkg-config --cflags $(MPI_PKG) 2>/dev/null)
LIBS_MPI := $(shell pkg-config --libs $(MPI_PKG) 2>/dev/null)
LIB_SRC  += $(wildcard src/mpi/*.c)
MPI_TEST_SRC := $(wildcard tests/mpi/test_*.c)
MPI_PROG_SRC := $(wildcard tests/mpi/prog_*.c)
endif
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SUPPORT_SRC := $(wildcard tests/support/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SUPPORT_OBJ := $(TEST_SUPPORT_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
MPI_TEST_BIN := $(MPI_TEST_SRC:tests/mpi/%.c=$(BUILD)/tests/%)
MPI_PROG_BIN := $(MPI_PROG_SRC:tests/mpi/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/libfusemoe.a
CLI      := $(BUILD)/fusemoe

.PHONY: all deps deps-mpi test check-tests test-mpi check-mpi bench-mpi asan bench demo p12 clean format
.DELETE_ON_ERROR:
.SECONDARY:

all: $(CLI) $(LIB) $(MPI_PROG_BIN)

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

$(MPI_TEST_BIN) $(MPI_PROG_BIN): $(BUILD)/tests/%: $(BUILD)/obj/tests/mpi/%.o $(TEST_SUPPORT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) -o $@ $< $(TEST_SUPPORT_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS)

deps:
	@sh scripts/install-deps.sh

deps-mpi: deps
	@sh scripts/install-deps.sh --mpi

# Each suite is its own Check binary; the runner reports every failing suite and fails if any did.
check-tests: $(TEST_BIN) $(CLI)
	@sh scripts/run-tests.sh $(TEST_BIN)

test: deps
	@$(MAKE) --no-print-directory check-tests

# The MPI suites start `mpirun -np 2 --oversubscribe` themselves (scripts/run-tests.sh runs them).
check-mpi: $(MPI_TEST_BIN) $(MPI_PROG_BIN) $(CLI)
	@sh scripts/run-tests.sh $(MPI_TEST_BIN)

test-mpi: deps-mpi
	@$(MAKE) --no-print-directory MPI=1 check-mpi

# Training throughput with 1 and 2 ranks and the gradient allreduce per step (never in CI).
bench-mpi: deps-mpi
	@$(MAKE) --no-print-directory MPI=1 all
	@sh scripts/bench-mpi.sh

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPTFLAGS="-O1 -g $(SANITIZE)" check-tests

bench: deps
	@$(MAKE) --no-print-directory $(BENCH_BIN) $(CLI)
	@sh scripts/run-bench.sh $(BENCH_BIN)

demo: deps
	@$(MAKE) --no-print-directory $(CLI)
	@sh scripts/demo.sh

p12: deps
	@$(MAKE) --no-print-directory $(CLI)
	@sh scripts/p12.sh

format:
	clang-format -i $(LIB_SRC) $(CLI_SRC) $(TEST_SRC) $(TEST_SUPPORT_SRC) $(BENCH_SRC) $(wildcard src/*.h src/cli/*.h preprocessing/*.h models/*.h data/*.h tests/support/*.h)

clean:
	rm -rf build build-asan build-mpi

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
