# Two entry points for a fresh machine with Python 3.11 and pip:
#   make demo   installs oko into ./.venv and runs `oko demo` on the bundled sample video
#   make test   installs oko with its test tools into ./.venv and runs the whole test suite
# Both are idempotent: the environment is synced from uv.lock every time (fast when current).

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .uv/bin/uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup demo test bench lock clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

setup: $(UV)
	$(UV) sync --frozen --python $(PYTHON)

demo: setup
	.venv/bin/oko demo

test: setup
	.venv/bin/python -m pytest

bench: setup
	.venv/bin/oko bench

lock: $(UV)
	$(UV) lock --python $(PYTHON)

clean:
	rm -rf .venv .uv oko-demo-output
