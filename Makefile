# The two commands of the quick start: `make train` and `make test`. Each installs what is missing
# (as root), configures and builds first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DMEGA_WERROR=ON
endif

.PHONY: all setup configure build test train clean

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
# finished run just reports its accuracy again). Ends by writing the run's HTML report and printing its path.
train: build
	$(BUILD)/mega train recipes/configs/lra/listops_small.yaml $(if $(wildcard runs/lra/listops_small/checkpoints/step-*),--resume)
	$(BUILD)/mega report runs/lra/listops_small -o runs/lra/listops_small/report.html

clean:
	rm -rf $(BUILD)
