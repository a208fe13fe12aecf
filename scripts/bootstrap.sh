#!/usr/bin/env bash
# Make .venv from the project's own files: Debian tools the tests use, then the package with
# its dev, ops, speakers, speech and hf-audio extras. Safe to re-run: each step is skipped when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

need_apt=()
for tool in espeak-ng:espeak-ng sox:sox; do
  bin=${tool%%:*}; pkg=${tool##*:}
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# Services the ops tests start on loopback (tests/ops): PostgreSQL, Redis, headless Chromium.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
for tool in redis-server:redis-server chromium:chromium chromedriver:chromium-driver; do
  bin=${tool%%:*}; pkg=${tool##*:}
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# FFmpeg's shared libraries, which torchcodec (the `hf-audio` extra) loads to decode datasets.Audio:
# Debian's `ffmpeg` brings libavcodec/-format/-device/-filter, libswscale and libswresample.
ld_cache=$({ command -v ldconfig >/dev/null 2>&1 && ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null || true)
for lib in libavdevice libavfilter libavformat libavcodec libswresample libswscale libavutil; do
  [[ $ld_cache == *"$lib.so."* ]] || { need_apt+=(ffmpeg); break; }
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Debian packages: ${need_apt[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: please install Debian packages: ${need_apt[*]}" >&2
  fi
fi

stamp=.venv/.bootstrap-stamp
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements-extra.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  findlinks=()
  [ -d /opt/wheels ] && findlinks=(--find-links /opt/wheels)
  .venv/bin/python -m pip install -q "${findlinks[@]}" -r requirements-extra.txt
  # The `speakers` extra (torch + the Resemblyzer encoder weights) so that the tests cover
  # diarization; torch is already the CPU build from requirements-extra.txt, so pip keeps it.
  # `hf-audio` (torchcodec 0.13.0, the newest CPU build on PyPI) lets datasets decode Audio() columns.
  .venv/bin/python -m pip install -q "${findlinks[@]}" -e '.[dev,ops,speakers,speech,hf-audio]'
  touch "$stamp"
fi
