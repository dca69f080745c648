# The two commands of the quick start: `make train` and `make test`. Each installs what is missing
# (as root), configures and builds first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DMEGA_WERROR=ON
endif

.PHONY: all setup configure build test train sanitize clean

all: build

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) > /dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L unit

# Trains Mega on the small ListOps recipe (its data generated into data_cache/ when missing) and prints
# the test accuracy. Run again, it resumes from the newest checkpoint in runs/lra/listops_small (a
# finished run just reports its accuracy again), then writes the run's HTML report and prints its path. TRAIN_ARGS adds recipe overrides, e.g. a short run:
#   make train TRAIN_ARGS="train.max_steps=30 train.eval_interval=30"
TRAIN_ARGS ?=
train: build
	$(BUILD)/mega train recipes/configs/lra/listops_small.yaml $(TRAIN_ARGS) $(if $(wildcard runs/lra/listops_small/checkpoints/step-*),--resume)
	$(BUILD)/mega report runs/lra/listops_small -o runs/lra/listops_small/report.html

# The unit tests under AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer, in a build
# folder of their own; the first finding stops its test with a stack trace.
SANITIZE_BUILD ?= build-sanitize
sanitize: setup
	@cmake -S . -B $(SANITIZE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEGA_SANITIZE=ON $(CMAKE_FLAGS) > /dev/null
	@cmake --build $(SANITIZE_BUILD) -j $(JOBS)
	cd $(SANITIZE_BUILD) && ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -j $(JOBS) -L unit

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD)
