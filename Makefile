# dormant — one GNU Makefile.  `make help` lists the targets.
#
# Layout: src/<module>/*.c; a file named *_avx2.c or *_avx512.c is compiled
# with that ISA's flags and must only be called after a CPU feature check.

CC      ?= cc
BUILD   ?= build
WERROR  ?= 0
OPT     ?= -O2
SAN     ?=
ARCH    := $(shell uname -m)

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wcast-qual -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif

CPPFLAGS += -Isrc -Iinclude -Itests/util -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64
CFLAGS   += -std=c11 $(OPT) -g $(WARN) -pthread -fno-strict-aliasing $(SAN)
LDFLAGS  += -pthread $(SAN)
LDLIBS   += -lm

# Optional libraries, found with pkg-config when the module needing them exists.
PKGS := $(shell for p in libpcre2-8 libedit inih jansson libmicrohttpd; do pkg-config --exists $$p 2>/dev/null && echo $$p; done)
ifneq ($(PKGS),)
CFLAGS += $(shell pkg-config --cflags $(PKGS))
LDLIBS += $(shell pkg-config --libs $(PKGS))
endif
LDLIBS += -ldl

ifeq ($(ARCH),x86_64)
ISA_AVX2   := -mavx2 -mfma -mf16c
ISA_AVX512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq \
              -mavx512vnni -mavx512bf16
endif

MODULES  := base gguf kern tok model mgr server bench
LIB_SRC  := $(sort $(foreach m,$(MODULES),$(wildcard src/$(m)/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_UTIL_SRC := $(sort $(wildcard tests/util/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
# The dashboard's files (src/server/dash/), embedded as a C table by a
# portable od+awk script; the generated file lives under $(BUILD) only.
DASH_ASSETS := $(sort $(wildcard src/server/dash/*))
DASH_C   := $(BUILD)/gen/dash_assets.c
DASH_O   := $(BUILD)/obj/gen/dash_assets.o
LIB_OBJ  += $(DASH_O)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_UTIL_OBJ := $(TEST_UTIL_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/libdormant.a
BIN      := $(BUILD)/dormant

.PHONY: all test asan fuzz fuzz-smoke bench clean deps demo help
.SECONDARY:
all: $(BIN) $(LIB)

$(BUILD)/obj/%_avx2.o: CFLAGS += $(ISA_AVX2)
$(BUILD)/obj/%_avx512.o: CFLAGS += $(ISA_AVX512)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(DASH_C): $(DASH_ASSETS) scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh $(DASH_ASSETS) > $@.tmp && mv $@.tmp $@

$(DASH_O): $(DASH_C)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_UTIL_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(TEST_UTIL_OBJ) $(LIB) $(LDLIBS) -lcmocka -o $@

# The CLI is part of `make test`: some tests run build/dormant as a user would.
test: $(TEST_BIN) $(BIN)
	@BUILD=$(BUILD) sh tests/run.sh $(TEST_BIN)

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  test

# ---- fuzzing (clang + libFuzzer) ----
# The library is built again with clang and coverage instrumentation into
# build-fuzz/ (same per-file ISA flags as the main build), then each
# fuzz/fuzz_*.c target links against it with libFuzzer's main.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SRC     := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined

.PHONY: fuzz-lib
fuzz-lib:
	$(MAKE) BUILD=build-fuzz CC=$(FUZZ_CC) WERROR=0 OPT=-O1 \
	  SAN="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" build-fuzz/libdormant.a

build-fuzz/fuzz_%: fuzz/fuzz_%.c fuzz-lib
	$(FUZZ_CC) $(CPPFLAGS) -std=c11 -g -O1 -DDM_FUZZ -fsanitize=fuzzer $(FUZZ_SAN) \
	  $(if $(PKGS),$(shell pkg-config --cflags $(PKGS))) \
	  $< build-fuzz/libdormant.a -o $@ -pthread $(LDLIBS)

build-fuzz/seeds: fuzz/seeds.c fuzz-lib
	$(FUZZ_CC) $(CPPFLAGS) -std=c11 -g -O1 $(FUZZ_SAN) $< build-fuzz/libdormant.a -o $@ -pthread $(LDLIBS)

fuzz: $(FUZZ_BIN) build-fuzz/seeds

fuzz-smoke: fuzz
	@sh fuzz/smoke.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

# Every benchmark: the kernels, then the lifecycle suite (see bench-life).
bench: bench-kernels bench-life

clean:
	rm -rf build build-asan build-fuzz

help:
	@echo 'make                 build/dormant and build/libdormant.a'
	@echo 'make test            build and run every test (cmocka, the JS clients, the pty chat)'
	@echo 'make asan            the same tests under AddressSanitizer + UBSan (build-asan/)'
	@echo 'make fuzz            the libFuzzer targets (clang; build-fuzz/)'
	@echo 'make fuzz-smoke      run each fuzz target for FUZZ_SECONDS (default 60)'
	@echo 'make demo            the main job: a real dormant serve on a synthetic model, memory from /proc'
	@echo 'make bench           bench-kernels, then bench-life'
	@echo 'make bench-kernels   matvec GB/s and matmul GFLOP/s per weight type, 2 threads'
	@echo 'make bench-life      the lifecycle suite on a synthetic 110M model (BENCH_MODEL=... for another)'
	@echo 'make dashboard-shot  docs/dashboard.png, the dashboard in headless Chromium'
	@echo 'make deps            install the Debian packages the build and tests need'
	@echo 'make clean           remove build/, build-asan/, build-fuzz/'

deps:
	@sh scripts/deps

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# The README's main job: a real `dormant serve` on a synthetic 110M model
# (random weights), on-demand vs keep-alive, memory read from /proc.
demo: $(BIN)
	$(BIN) demo

# The lifecycle suite on the demo's synthetic 110M model (or BENCH_MODEL=...):
# tables on stdout, every sample in build/bench-report/bench.json, charts in
# build/bench-report/index.html.
BENCH_MODEL ?= build/demo/default-110m-Q8_0.gguf
.PHONY: bench-life
bench-life: $(BIN)
	@test -f $(BENCH_MODEL) || { mkdir -p $(dir $(BENCH_MODEL)) && $(BIN) synth --preset 110m --type Q8_0 -o $(BENCH_MODEL); }
	$(BIN) bench all $(BENCH_MODEL) --json build/bench-report/bench.json --report build/bench-report

# The README's dashboard screenshot (docs/dashboard.png): a real `dormant
# serve`, some requests, the page in headless Chromium (node, npm, chromium).
.PHONY: dashboard-shot
dashboard-shot: $(BIN)
	sh scripts/dashboard-shot.sh $(BIN) docs/dashboard.png

# Kernel throughput: matvec GB/s against the measured memory read bandwidth
# and matmul GFLOP/s per weight type, 2 threads, medians of 7 runs.
.PHONY: bench-kernels
bench-kernels: $(BIN)
	$(BIN) bench kernels --threads 2 --runs 7
