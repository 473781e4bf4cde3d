"""Regenerate docs/images/viewer_recording.png: napari with the sample recording open.

Run with a display, or headless under Xvfb:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

from pathlib import Path

from napari_densepose_gaze.ui.launch import main

OUT = Path(__file__).resolve().parent / "images" / "viewer_recording.png"

if __name__ == "__main__":
    raise SystemExit(main(["--screenshot", str(OUT)]))
