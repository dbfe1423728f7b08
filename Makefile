# spatial_memory_ros on a plain Linux machine (no ROS installed): `make demo`, `make test`.
# Everything lands in .venv (Python 3.11 + the ROS 2 Kilted wheels) and build/ (the CMake build of msg/ and srv/).

PYTHON    ?= python3.11
VENV      := .venv
PY        := $(VENV)/bin/python
BUILD_DIR := build/cmake
DURATION  ?= 60
ROBOTS    ?= 3
OUT       ?= runs
RECORD    ?= 1
WORLD     ?= builtin
BEV       ?=
BITS      ?= 16
TESTS     ?= test
PYTEST_ARGS ?=

# ROS_DISTRO=jazzy: the same setup with the ROS 2 Jazzy (LTS) wheels (requirements-jazzy.txt) in .venv-jazzy and
# build/jazzy/, and `make test` runs the ROS-facing tests (-m ros) there. Anything else: Kilted (Humble publishes
# no wheels).
BUILD_ROOT := build
ifeq ($(ROS_DISTRO),jazzy)
VENV       := .venv-jazzy
PY         := $(VENV)/bin/python
BUILD_ROOT := build/jazzy
BUILD_DIR  := $(BUILD_ROOT)/cmake
DISTRO_PYTEST_ARGS := -m ros
DISTRO_REQUIREMENTS := requirements-jazzy.txt
INSTALL_REQUIREMENTS = grep -v '^ros-' requirements.txt > $(VENV)/requirements-common.txt && \
  $(PY) -m pip install --quiet --disable-pip-version-check -r requirements-jazzy.txt -r $(VENV)/requirements-common.txt
else
INSTALL_REQUIREMENTS = $(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
endif

# Keep DDS discovery on this machine (Humble reads ROS_LOCALHOST_ONLY, Jazzy and later the discovery range).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_LOCALHOST_ONLY ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

SOURCES := CMakeLists.txt package.xml $(shell find msg srv spatial_memory_ros launch config scripts -type f \
             -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null)

.PHONY: help setup demo test test-quick bench build clean distclean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

# The real ROS 2 launch system and CLI (ros2 launch/topic/param/service, launch_testing) are not wheels: when the
# vendored sources sit beside this clone (../shared/vendor/ros2_tools), setup installs them into the venv too.
ROS2_TOOLS ?= $(abspath ../shared/vendor/ros2_tools)
ROS2_TOOLS_STAMP := $(if $(wildcard $(ROS2_TOOLS)/install.sh),$(VENV)/.ros2-tools-stamp,)

setup: $(VENV)/.build-stamp $(ROS2_TOOLS_STAMP)  ## create .venv, install dependencies, build and install the package (idempotent)

build: setup  ## same as setup

demo: setup  ## run the simulated team: DURATION=<sim s> ROBOTS=<n> OUT=<dir> BITS=<n> RECORD=0 (no bag/video) WORLD=memory_maze [BEV=oracle]
	$(VENV)/bin/spatial-memory demo --duration $(DURATION) --robots $(ROBOTS) --out $(OUT) --bits $(BITS) \
	  --world $(WORLD) $(if $(BEV),--bev $(BEV),) $(if $(filter 1 yes true,$(RECORD)),--record,)

test: setup  ## run the test suite (unit, real rclpy nodes over DDS, end to end): what CI runs
	$(PY) -m pytest $(TESTS) $(DISTRO_PYTEST_ARGS) $(PYTEST_ARGS)

test-quick: setup  ## the edit-test loop: every test not marked slow (under a minute)
	$(PY) -m pytest $(TESTS) -m "not slow" -q $(PYTEST_ARGS)

bench: setup  ## run every benchmark script (writes benchmarks/results/*.json)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

setup-net:  ## install what the multi-host link tests need (iproute2, iptables; as root with apt-get): CI runs it
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for t in ip:iproute2 tc:iproute2 iptables:iptables; do \
	    command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	else echo "setup-net: not root or no apt-get; the multi-host link tests will be skipped"; fi

$(VENV)/.deps-stamp: requirements.txt $(DISTRO_REQUIREMENTS) scripts/check_system.sh scripts/fix_ros_wheel_paths.py
	@bash scripts/check_system.sh "$(PYTHON)"
	@test -x $(PY) || { echo "setup: creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(INSTALL_REQUIREMENTS)
	$(PY) scripts/fix_ros_wheel_paths.py $(VENV)
	@touch $@

# tf2_msgs is not published as a wheel; build a stand-in with the same TFMessage definition into the venv.
$(VENV)/.tf2-stamp: $(VENV)/.deps-stamp scripts/vendor/tf2_msgs/CMakeLists.txt scripts/vendor/tf2_msgs/msg/TFMessage.msg
	@mkdir -p $(BUILD_ROOT)
	@if $(PY) -c "import tf2_msgs.msg" 2>/dev/null && [ ! -f $@ ]; then echo "setup: tf2_msgs found"; else \
	  echo "setup: building tf2_msgs (TFMessage) into $(VENV) (log: $(BUILD_ROOT)/tf2_msgs.log)"; \
	  cmake -S scripts/vendor/tf2_msgs -B $(BUILD_ROOT)/tf2_msgs -DCMAKE_PREFIX_PATH="$(CURDIR)/$(VENV)" \
	    -DCMAKE_INSTALL_PREFIX="$(CURDIR)/$(VENV)" -DPython3_EXECUTABLE="$(CURDIR)/$(PY)" -DBUILD_TESTING=OFF \
	    > $(BUILD_ROOT)/tf2_msgs.log 2>&1 && cmake --build $(BUILD_ROOT)/tf2_msgs -j 2 >> $(BUILD_ROOT)/tf2_msgs.log 2>&1 \
	    && cmake --install $(BUILD_ROOT)/tf2_msgs >> $(BUILD_ROOT)/tf2_msgs.log 2>&1 \
	    || { tail -n 30 $(BUILD_ROOT)/tf2_msgs.log; echo "setup: building tf2_msgs failed; see $(BUILD_ROOT)/tf2_msgs.log"; exit 1; }; fi
	@touch $@

# The installed package is removed before each install: cmake --install only adds files, so a module deleted or
# renamed in the source would stay importable in the venv (a stale commands/ module broke the whole CLI).
$(VENV)/.build-stamp: $(VENV)/.deps-stamp $(VENV)/.tf2-stamp $(SOURCES)
	@echo "setup: building msg/ and srv/ with rosidl and installing the package into $(VENV) (log: $(BUILD_ROOT)/cmake.log)"
	@mkdir -p $(BUILD_ROOT)
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_PREFIX_PATH="$(CURDIR)/$(VENV)" -DCMAKE_INSTALL_PREFIX="$(CURDIR)/$(VENV)" \
	    -DPython3_EXECUTABLE="$(CURDIR)/$(PY)" -DBUILD_TESTING=OFF > $(BUILD_ROOT)/cmake.log 2>&1 \
	  && cmake --build $(BUILD_DIR) -j 2 >> $(BUILD_ROOT)/cmake.log 2>&1 \
	  && rm -rf "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/spatial_memory_ros" \
	  && cmake --install $(BUILD_DIR) >> $(BUILD_ROOT)/cmake.log 2>&1 \
	  || { tail -n 30 $(BUILD_ROOT)/cmake.log; echo "setup: the CMake build failed; the full log is $(BUILD_ROOT)/cmake.log"; exit 1; }
	@touch $@

$(VENV)/.ros2-tools-stamp: $(VENV)/.deps-stamp
	@echo "setup: installing the ROS 2 launch system and CLI from $(ROS2_TOOLS) into $(VENV) (log: $(BUILD_ROOT)/ros2_tools.log)"
	@mkdir -p $(BUILD_ROOT)
	@bash $(ROS2_TOOLS)/install.sh $(VENV) > $(BUILD_ROOT)/ros2_tools.log 2>&1 \
	  || { tail -n 30 $(BUILD_ROOT)/ros2_tools.log; echo "setup: installing the ROS 2 tools failed; see $(BUILD_ROOT)/ros2_tools.log"; exit 1; }
	@# `source .venv/bin/activate` then lets ros2 launch/run/pkg find this package in the venv's ament index.
	@grep -q AMENT_PREFIX_PATH $(VENV)/bin/activate || printf '%s\n' '' \
	  '# spatial_memory_ros: ros2 launch/run find the packages installed in this venv through its ament index' \
	  'export AMENT_PREFIX_PATH="$$VIRTUAL_ENV$${AMENT_PREFIX_PATH:+:$$AMENT_PREFIX_PATH}"' >> $(VENV)/bin/activate
	@touch $@

clean:  ## remove the CMake build (the next setup rebuilds the interfaces)
	rm -rf build $(VENV)/.build-stamp

distclean: clean  ## also remove .venv
	rm -rf $(VENV)
