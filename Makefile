# memrec / memana — one non-recursive Makefile. `make`, `make check`,
# `make demo`; BUILD holds every output.

BUILD ?= build
PREFIX ?= /usr/local
CC ?= cc
CXX ?= g++
WERROR ?= 0
V ?= 0

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKGS := libzstd libdw sqlite3 libunwind
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wvla -Wformat=2 -Wundef
ifeq ($(WERROR),1)
WARN += -Werror
endif
CFLAGS ?= -g -O2
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -fPIC -MMD -MP $(PKG_CFLAGS) \
	-include common/banned.h
ALL_CFLAGS = $(BASE_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)

# Per-directory include lists keep the dependency direction honest:
# recorder -> formats -> common; analyzer -> formats -> common.
INC_common := -Icommon
INC_formats := -Iformats -Icommon
INC_recorder := -Irecorder -Iformats -Icommon
INC_analyzer := -Ianalyzer -Iformats -Icommon
INC_tests := -Itests -Ianalyzer -Iformats -Icommon

COMMON_SRC := $(wildcard common/*.c)
FORMATS_SRC := $(wildcard formats/*.c)
REC_LIB_SRC := $(filter-out recorder/memrec.c,$(wildcard recorder/*.c))
ANA_SRC := $(wildcard analyzer/*.c)
ANA_LIB_SRC := $(filter-out analyzer/memana.c,$(ANA_SRC))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_OBJ := $(call obj,$(COMMON_SRC))
FORMATS_OBJ := $(call obj,$(FORMATS_SRC))
REC_LIB_OBJ := $(call obj,$(REC_LIB_SRC))
ANA_LIB_OBJ := $(call obj,$(ANA_LIB_SRC))

LIB := $(BUILD)/lib/libmemrec.so
MEMREC := $(BUILD)/bin/memrec
MEMANA := $(BUILD)/bin/memana

REC_LIBS := -lunwind -lzstd -ldl -lpthread
ANA_LIBS := -ldw -lelf -lsqlite3 -lzstd -lstdc++ -lm

all: $(LIB) $(MEMREC) $(MEMANA) progs

$(BUILD)/obj/%.o: %.c | $(BUILD)/.dirs
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) $(INC_$(firstword $(subst /, ,$<))) -c -o $@ $<

$(BUILD)/.dirs:
	@mkdir -p $(BUILD)/bin $(BUILD)/lib $(BUILD)/obj
	@touch $@

# The preload library: hidden visibility, only the interposed symbols exported.
# LIB_EXTRA_CFLAGS (make asan) replaces EXTRA_CFLAGS for it: its objects,
# formats/ and common/ included, are then compiled again in $(BUILD)/obj-lib
# (a malloc interposer preloaded into uninstrumented programs can carry UBSan,
# whose runtime is linked into the .so, but not ASan).
$(BUILD)/obj/recorder/%.o: ALL_CFLAGS += -fvisibility=hidden -ftls-model=initial-exec
ifdef LIB_EXTRA_CFLAGS
LIB_SAN := $(LIB_EXTRA_CFLAGS)
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj-lib/%.o,$(REC_LIB_SRC) $(FORMATS_SRC) $(COMMON_SRC))
$(BUILD)/obj-lib/%.o: %.c | $(BUILD)/.dirs
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC      $< (lib)"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) $(LIB_EXTRA_CFLAGS) $(INC_$(firstword $(subst /, ,$<))) \
		$(if $(filter recorder/%,$<),-fvisibility=hidden -ftls-model=initial-exec) -c -o $@ $<
else
LIB_SAN := $(EXTRA_CFLAGS)
LIB_OBJ := $(REC_LIB_OBJ) $(FORMATS_OBJ) $(COMMON_OBJ)
endif
$(LIB): $(LIB_OBJ) recorder/libmemrec.map
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) -shared $(CFLAGS) $(LIB_SAN) -Wl,--version-script=recorder/libmemrec.map \
		-Wl,-z,nodelete -o $@ $(LIB_OBJ) $(REC_LIBS)

$(MEMREC): $(call obj,recorder/memrec.c) $(FORMATS_OBJ) $(COMMON_OBJ)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $^ -lzstd

# The HTML report's template is linked in (.incbin): rebuild on its change.
$(BUILD)/obj/analyzer/ana_html.o: analyzer/html/report.html

$(MEMANA): $(call obj,analyzer/memana.c) $(ANA_LIB_OBJ) $(FORMATS_OBJ) $(COMMON_OBJ)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $^ $(ANA_LIBS)

# ---- tests ----------------------------------------------------------------
# Ground-truth programs: built without optimization so every named function
# keeps its own frame and line.
PROG_C := $(wildcard tests/progs/*.c)
PROG_CXX := $(wildcard tests/progs/*.cpp)
PROGS := $(patsubst tests/progs/%.c,$(BUILD)/tests/progs/%,$(PROG_C)) \
	$(patsubst tests/progs/%.cpp,$(BUILD)/tests/progs/%,$(PROG_CXX)) \
	$(BUILD)/tests/progs/gt_diff_v2
PROG_CFLAGS := -g -O0 -fno-omit-frame-pointer -fno-inline -pthread -Iinclude
# dlopen plugins of the tests: tests/progs/plugins/NAME.c -> libNAME.so
PLUGIN_C := $(wildcard tests/progs/plugins/*.c)
PLUGINS := $(patsubst tests/progs/plugins/%.c,$(BUILD)/tests/progs/lib%.so,$(PLUGIN_C))

progs: $(PROGS) $(PLUGINS)

$(BUILD)/tests/progs/lib%.so: tests/progs/plugins/%.c | $(BUILD)/.dirs
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC      $<"
	$(Q)$(CC) -std=gnu11 -shared -fPIC -g -O0 -fno-omit-frame-pointer -fno-inline -Wall -o $@ $<

$(BUILD)/tests/progs/%: tests/progs/%.c | $(BUILD)/.dirs
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC      $<"
	$(Q)$(CC) -std=gnu11 $(PROG_CFLAGS) -Wall -o $@ $< -ldl

$(BUILD)/tests/progs/%: tests/progs/%.cpp | $(BUILD)/.dirs
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CXX     $<"
	$(Q)$(CXX) $(PROG_CFLAGS) -Wall -o $@ $<

# Programs using the public header (include/memrec.h).
$(BUILD)/tests/progs/gt_phases: include/memrec.h

# The second build of gt_diff (tests/e2e/3104-diff.sh): one site doubles.
$(BUILD)/tests/progs/gt_diff_v2: tests/progs/gt_diff.c | $(BUILD)/.dirs
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  CC      $< (FACTOR=2)"
	$(Q)$(CC) -std=gnu11 $(PROG_CFLAGS) -DFACTOR=2 -Wall -o $@ $<

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))

$(BUILD)/obj/tests/%.o: ALL_CFLAGS += -Wno-missing-prototypes
$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(ANA_LIB_OBJ) $(FORMATS_OBJ) $(COMMON_OBJ)
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $^ -lcmocka $(ANA_LIBS)

# The stack trie's test compiles recorder/rec_trie.c in (small tables, race
# windows widened) and links the recorder's OS layer (not the .so).
$(BUILD)/obj/tests/unit/test_rec_trie.o: INC_tests += -Irecorder
$(BUILD)/tests/unit/test_rec_trie: $(BUILD)/obj/tests/unit/test_rec_trie.o $(call obj,recorder/rec_prim.c)
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $^ -lcmocka -lpthread

# Fuzz targets, built as plain regression programs replaying the stored
# corpus (make check), or as libFuzzer binaries with clang (make fuzz).
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%_replay,$(FUZZ_SRC))

$(BUILD)/tests/fuzz/%_replay: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/replay_main.o $(FORMATS_OBJ) $(COMMON_OBJ)
	@mkdir -p $(@D)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $^ -lzstd

$(BUILD)/obj/tests/fuzz/replay_main.o: tests/fuzz/replay_main.c | $(BUILD)/.dirs
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(INC_tests) -c -o $@ $<

FUZZ_CC ?= clang
FUZZ_FLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Iformats -Icommon
fuzz: | $(BUILD)/.dirs
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: needs $(FUZZ_CC) with libFuzzer (Debian: apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $(BUILD)/fuzz/fuzz_decode tests/fuzz/fuzz_decode.c \
		$(FORMATS_SRC) $(COMMON_SRC) -lzstd
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $(BUILD)/fuzz/fuzz_roundtrip tests/fuzz/fuzz_roundtrip.c \
		$(FORMATS_SRC) $(COMMON_SRC) -lzstd
	@echo "run: $(BUILD)/fuzz/fuzz_decode -max_total_time=60 tests/fuzz/corpus/decode"

TEST_BINS := $(UNIT_BIN) $(FUZZ_REPLAY)
E2E := $(sort $(wildcard tests/e2e/[0-9]*.sh))

export MEMREC_BUILD := $(abspath $(BUILD))

check-unit: $(TEST_BINS)
	CMOCKA_MESSAGE_OUTPUT=TAP prove --exec '' $(TEST_BINS)

check-e2e: all
	prove --exec '' $(E2E)

# The README's test command: everything, one closing line from prove.
check: deps
	@$(MAKE) --no-print-directory all $(TEST_BINS)
	CMOCKA_MESSAGE_OUTPUT=TAP prove --exec '' $(TEST_BINS) $(E2E)

check-deps:
	@! grep -n '#include "\(ana\|memana\)' recorder/*.[ch] formats/*.[ch] common/*.[ch] || \
		{ echo "check-deps: forbidden include" >&2; exit 1; }
	@! grep -n '#include "rec_' analyzer/*.[ch] formats/*.[ch] common/*.[ch] || \
		{ echo "check-deps: forbidden include" >&2; exit 1; }

# The whole check suite (unit, fuzz corpus replay, e2e) with every program
# of ours under ASan+UBSan, except libmemrec.so: UBSan only (see LIB_SAN).
# Sanitizer reports go to build-asan/san/ (never mixed into the output the
# tests compare) with their own exit codes; any report fails the target.
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
UBSAN_FLAGS := -fsanitize=undefined -fno-sanitize-recover=all
SAN_LOG := $(abspath build-asan)/san
asan:
	@rm -rf $(SAN_LOG) && mkdir -p $(SAN_LOG)
	@ASAN_OPTIONS=log_path=$(SAN_LOG)/asan:exitcode=86:detect_leaks=1:verify_asan_link_order=0 \
	UBSAN_OPTIONS=log_path=$(SAN_LOG)/ubsan:halt_on_error=1:exitcode=87:print_stacktrace=1 \
	$(MAKE) --no-print-directory BUILD=build-asan EXTRA_CFLAGS="$(ASAN_FLAGS)" \
		LIB_EXTRA_CFLAGS="$(UBSAN_FLAGS)" check; rc=$$?; \
	if [ -n "$$(ls -A $(SAN_LOG))" ]; then \
		echo "asan: sanitizer reports in $(SAN_LOG):" >&2; head -n 40 $(SAN_LOG)/* >&2; exit 1; \
	fi; exit $$rc

deps:
	@tools/install-deps.sh

# The benchmark kit (issue 4): memrec against untraced and heaptrack runs;
# prints Markdown tables (docs/performance.md). BENCH_RUNS, BENCH_QUICK=1, ...
bench:
	@tools/install-deps.sh --bench
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tools/bench/run.sh

# The README's first command: record a real Debian program and report it.
demo:
	@tools/install-deps.sh
	@$(MAKE) --no-print-directory all
	@tools/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 755 $(MEMREC) $(MEMANA) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/memrec.h $(DESTDIR)$(PREFIX)/include/

format:
	clang-format -i common/*.[ch] formats/*.[ch] recorder/*.[ch] analyzer/*.[ch]

lint: check-deps
	cppcheck --quiet --error-exitcode=1 --enable=warning -Icommon -Iformats common formats recorder analyzer

clean:
	rm -rf $(BUILD) build-asan

.SECONDARY:

.PHONY: all progs check check-unit check-e2e check-deps asan deps demo bench install format lint clean fuzz

-include $(shell find $(BUILD)/obj $(BUILD)/obj-lib -name '*.d' 2>/dev/null)
