#!/usr/bin/env bash
# Set up from scratch (system libraries, .venv, the project) and open napari with
# the plugin on the synthetic sample recording, or on the recording given:
#   bash scripts/run_napari.sh [RECORDING_FOLDER_OR_MP4]
# Without a display (a server, CI) it renders the window under Xvfb and saves a
# screenshot to ${SCREENSHOT:-build/napari_recording.png} instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash .ci/setup qt
python=("${VENV:-.venv}/bin/python" -m napari_densepose_gaze.ui)

if [[ -n "${DISPLAY:-}" || -n "${WAYLAND_DISPLAY:-}" ]]; then
    exec "${python[@]}" "$@"
fi
echo "run_napari: no display; rendering under Xvfb to ${SCREENSHOT:-build/napari_recording.png}" >&2
exec xvfb-run -a -s "-screen 0 1600x1000x24" "${python[@]}" "$@" --screenshot "${SCREENSHOT:-build/napari_recording.png}"
