# The two commands: `make demo` (main job on the embedded default) and `make test`.
# Both run scripts/bootstrap.sh first, which installs what is missing (idempotent).
VENV := .venv
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH))
export FASTDDS_DEFAULT_PROFILES_FILE := $(CURDIR)/config/fastdds-localhost.xml
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp

.PHONY: bootstrap demo test bench bench-soak clean

bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/python -m triton_ros.tools.demo $(ARGS)

test: bootstrap
	$(VENV)/bin/python -m pytest -ra test $(ARGS)

clean:
	rm -rf out build install log

# Results: tables on stdout; bench_bridge also writes bench/results/bridge.{json,md} and plots.
bench: bootstrap
	$(VENV)/bin/python bench/bench_transport.py
	$(VENV)/bin/python bench/bench_multicamera.py
	$(VENV)/bin/python bench/bench_hotpath.py
	$(VENV)/bin/python bench/bench_bridge.py --profile

# 10-minute soak with a server fault every minute (not in `bench`, not in CI):
# writes bench/results/soak.{json,png}. Shorter: make bench-soak ARGS="--duration-s 120 --fault-every-s 30"
bench-soak: bootstrap
	nice -n 5 $(VENV)/bin/python bench/bench_soak.py $(ARGS)
