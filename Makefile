# gridmill -- one non-recursive Makefile: libgridmill.a, the three stages, tests, demo.

PKGS     := gdal libzmq msgpack libuv xgboost
CC       ?= cc
CSTD     := -std=c11 -D_GNU_SOURCE
WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter
OPT      ?= -O2 -g
CFLAGS_X ?=
LDFLAGS_X ?=
ifdef WERROR
WARN += -Werror
endif
BUILD    ?= build
PYTHON   ?= /usr/bin/python3

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS   = $(CSTD) $(WARN) $(OPT) $(CFLAGS_X) -Icommon $(PKG_CFLAGS) -MMD -MP
LDLIBS   = $(PKG_LIBS) -lm -lpthread
LDFLAGS  = $(LDFLAGS_X)

LIB_SRC    := $(wildcard common/*.c)
READER_SRC := $(wildcard reader/*.c)
WORKER_SRC := $(wildcard worker/*.c)
WRITER_SRC := $(wildcard writer/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
LIB    := $(BUILD)/libgridmill.a
BINS   := $(BUILD)/gridmill-reader $(BUILD)/gridmill-worker $(BUILD)/gridmill-writer $(BUILD)/gridmill-hub \
          $(BUILD)/gridmill-stage-mask
UNITS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps deps-test test unit units valgrind integration asan-integration demo clean asan bench fuzz install uninstall man
all: $(BINS)

deps:
	@scripts/install-deps
deps-test:
	@scripts/install-deps --test

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/gridmill-reader: $(call obj,$(READER_SRC)) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/gridmill-worker: $(call obj,$(WORKER_SRC)) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/gridmill-writer: $(call obj,$(WRITER_SRC)) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the hub that custom stages connect to, and the C example stage (scripts/stages/)
$(BUILD)/gridmill-hub: $(BUILD)/common/hub/hub.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/gridmill-stage-mask: $(BUILD)/scripts/stages/mask_stage.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# install: the executables, the supervisor with its modules, gridmill-report, the example stages and a man page
# per command, under PREFIX (/usr/local) in DESTDIR. The supervisor finds everything next to itself.
PREFIX  ?= /usr/local
DESTDIR ?=
VERSION := $(shell sed -n 's/^VERSION = "\(.*\)"/\1/p' scripts/gridmill)
MODULES := scripts/gridmill_launch.py scripts/gridmill_progress.py scripts/gridmill_log.py
MANS    := gridmill gridmill-predict gridmill-run gridmill-reader gridmill-worker gridmill-writer gridmill-hub \
           gridmill-stage-mask gridmill-report
man: $(patsubst %,$(BUILD)/man/%.1,$(MANS))
$(BUILD)/man/%.1: $(BINS) scripts/gridmill scripts/gridmill-report scripts/make-man
	@mkdir -p $(dir $@)
	@case $* in \
	  gridmill) help="scripts/gridmill --help"; what="apply predictive models over large rasters, in stages";; \
	  gridmill-predict) help="scripts/gridmill predict --help"; what="apply one XGBoost model to every pixel";; \
	  gridmill-run) help="scripts/gridmill run --help"; what="sample polygons, train a model per iteration, apply, summarise";; \
	  gridmill-report) help="scripts/gridmill-report --help"; what="quicklooks and an HTML report of a gridmill output folder";; \
	  gridmill-hub) help="$(BUILD)/$* --help"; what="pass messages between gridmill stages and custom stages";; \
	  gridmill-stage-mask) help="$(BUILD)/$* --help"; what="example pre-stage: covariates nodata where a mask is 0";; \
	  *) help="$(BUILD)/$* --help"; what="the $${*#gridmill-} stage of a gridmill run";; \
	esac; $$help | $(PYTHON) scripts/make-man $* $(VERSION) "$$what" >$@.tmp && mv $@.tmp $@
install: all man
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/gridmill/stages $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 scripts/gridmill scripts/gridmill-report $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(MODULES) $(DESTDIR)$(PREFIX)/lib/gridmill/
	install -m 755 scripts/stages/confident_stage.py $(DESTDIR)$(PREFIX)/lib/gridmill/stages/
	install -m 644 $(patsubst %,$(BUILD)/man/%.1,$(MANS)) $(DESTDIR)$(PREFIX)/share/man/man1/
uninstall:
	rm -f $(patsubst $(BUILD)/%,$(DESTDIR)$(PREFIX)/bin/%,$(BINS)) $(DESTDIR)$(PREFIX)/bin/gridmill \
	  $(DESTDIR)$(PREFIX)/bin/gridmill-report $(patsubst %,$(DESTDIR)$(PREFIX)/share/man/man1/%.1,$(MANS))
	rm -rf $(DESTDIR)$(PREFIX)/lib/gridmill

# test: unit tests (cmocka) natively and under valgrind, the integration tests against python3-gdal /
# python3-xgboost oracles, then the core integration tests again with the stages built with ASan/UBSan.
test: deps-test
	$(MAKE) WERROR=1 all units
	$(MAKE) unit valgrind integration asan-integration

valgrind: units
	@set -e; for t in $(UNITS); do echo "== valgrind $$t"; \
	  valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite $$t >/dev/null; done

# The stages write sanitizer reports into build-asan/reports/; any report fails the target.
asan-integration:
	$(MAKE) asan
	@rm -rf build-asan/reports && mkdir -p build-asan/reports
	@set -e; for t in $(patsubst $(BUILD)/%,build-asan/%,$(UNITS)); do echo "== asan $$t"; $$t >/dev/null; done
	@ASAN_OPTIONS=detect_leaks=1:log_path=$(CURDIR)/build-asan/reports/asan \
	  UBSAN_OPTIONS=print_stacktrace=1:log_path=$(CURDIR)/build-asan/reports/ubsan \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  PYTHON=$(PYTHON) BUILD=build-asan tests/run-integration predict_oracle identical bad_input resume_safe
	@if ls build-asan/reports/* >/dev/null 2>&1; then cat build-asan/reports/*; \
	  echo "asan-integration: sanitizer reports above"; exit 1; fi
	@echo "asan-integration: no sanitizer report"

units: $(UNITS)

unit: units
	@set -e; for t in $(UNITS); do echo "== $$t"; $$t; done

integration: all
	@PYTHON=$(PYTHON) BUILD=$(BUILD) tests/run-integration

# asan: the same binaries under AddressSanitizer and UBSan, in build-asan/.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  CFLAGS_X="-fsanitize=address,undefined" LDFLAGS_X="-fsanitize=address,undefined" all units

demo: deps
	$(MAKE) all
	@PYTHON=$(PYTHON) BUILD=$(BUILD) scripts/demo

# bench: the benchmark of bench/README.md (default 4096x4096, N = 10; BENCH_ARGS="--size 1024" for minutes).
$(BUILD)/bench/io_floor: $(BUILD)/bench/io_floor.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/bench/evaluator: $(BUILD)/bench/evaluator.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/bench/gtree_bench: $(BUILD)/bench/gtree_bench.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
bench: deps
	@scripts/install-deps --bench
	$(MAKE) all $(BUILD)/bench/io_floor $(BUILD)/bench/evaluator $(BUILD)/bench/gtree_bench
	@PYTHON=$(PYTHON) BUILD=$(BUILD) bench/run_bench.sh $(BENCH_ARGS)
	@echo "bench: evaluator against XGBoost's predictor on one core (bit-identical or it fails):"
	@f=$$(cat $(BUILD)/bench/last-data)/forest.json; echo "$$f"; $(BUILD)/bench/evaluator "$$f" 8 50000
	@echo "bench: the model zoo (boosting depth 6/8/10 on 5-60 features, a forest, regression, the full job's) on every path:"
	@$(PYTHON) bench/make_gtree_zoo.py $(BUILD)/bench/zoo && $(BUILD)/bench/gtree_bench $(BUILD)/bench/zoo

# fuzz: libFuzzer (Debian's clang) on the header and job decoders, FUZZ_SECONDS long (default 60).
FUZZ_SECONDS ?= 60
FUZZ_SRC := common/gm_wire.c common/gm_mpack.c common/gm_job.c common/gm_log.c common/gm_msg.c
fuzz:
	@scripts/install-deps --fuzz
	@mkdir -p $(BUILD)/fuzz/corpus
	clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Icommon $(shell pkg-config --cflags msgpack libzmq) \
	  tests/fuzz/fuzz_wire.c $(FUZZ_SRC) -o $(BUILD)/fuzz/fuzz_wire $(shell pkg-config --libs msgpack libzmq)
	$(PYTHON) tests/fuzz/make_corpus.py $(BUILD)/fuzz/seeds
	$(BUILD)/fuzz/fuzz_wire -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
	  $(BUILD)/fuzz/corpus $(BUILD)/fuzz/seeds

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
