"""Fingerprint everything the command line writes for a synthetic export, to prove a reshape changed no output.

    python scripts/output_fingerprint.py OUT.json [--workdir DIR]
    python scripts/output_fingerprint.py --compare BEFORE.json AFTER.json

The first form writes a synthetic export of three recordings (the first with
audio), runs ``densepose-gaze run`` on it with the synthetic parity checkpoint
(CPU, small input), then ``hits`` (default radius, 30 px and 200 px, wider than the frames), ``render`` and
``report``, and records a SHA-256 per output: CSV and JSON files byte for byte,
figures by their decoded pixels (PNG) or their text without the creation date
(SVG), videos by their decoded frames and audio samples, results stores by their
label and person arrays, processed frames and detections (the store's own files
hold dates and versions). Run it once with the old code on ``PYTHONPATH`` and
once with the new, then compare: every entry must be equal.

The package is imported from wherever Python finds it (``PYTHONPATH=old/src``
selects an older checkout); the commands run as ``python -m napari_densepose_gaze``
in a subprocess with the same environment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MODEL = "R_50_FPN_s1x"
FAST = ["--device", "cpu", "--input-size", "64", "--score-threshold", "0.995"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parity_fixtures() -> Path:
    configured = os.environ.get("DENSEPOSE_PARITY_FIXTURES")
    if configured:
        return Path(configured)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "fixtures" / "densepose_parity"
        if candidate.is_dir():
            return candidate
    raise SystemExit("parity fixtures not found: set DENSEPOSE_PARITY_FIXTURES")


def _cli(*args: str) -> None:
    command = [sys.executable, "-m", "napari_densepose_gaze", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def _video(path: Path) -> str:
    import av

    digest = hashlib.sha256()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            digest.update(frame.to_ndarray(format="rgb24").tobytes())
    with av.open(str(path)) as container:
        if container.streams.audio:
            for frame in container.decode(audio=0):
                digest.update(frame.to_ndarray().tobytes())
    return digest.hexdigest()


def _file(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".png":
        from PIL import Image

        with Image.open(path) as image:
            return _sha(np.asarray(image.convert("RGBA")).tobytes())
    if suffix == ".svg":
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"<dc:date>.*?</dc:date>", "", text, flags=re.S)
        text = re.sub(r"Matplotlib v[\w.+]+", "Matplotlib", text)
        return _sha(text.encode())
    if suffix in (".mp4", ".mkv", ".mov"):
        return _video(path)
    return _sha(path.read_bytes())


def _store(folder: Path) -> dict[str, str]:
    from napari_densepose_gaze.store import ResultsStore

    store = ResultsStore.open(folder)
    metadata = {k: v for k, v in store.metadata.items() if k not in ("date", "package_version", "recording_folder")}
    return {
        "labels": _sha(np.asarray(store.labels[:]).tobytes()),
        "persons": _sha(np.asarray(store.persons[:]).tobytes()),
        "processed": ",".join(map(str, store.processed_frames().tolist())),
        "detections": _sha(store.detections().to_csv(index=False).encode()),
        "metadata": _sha(json.dumps(metadata, sort_keys=True).encode()),
    }


def fingerprint(workdir: Path) -> dict[str, str]:
    from napari_densepose_gaze.synthetic.export import write_export

    root = write_export(workdir / "export", [{"audio": True}, {}, {}], seconds=1.0, size=(160, 120))
    fixtures = _parity_fixtures()
    checkpoint = workdir / f"{MODEL}.pkl"
    subprocess.run([sys.executable, str(fixtures / "make_checkpoint.py"), str(fixtures / f"manifest_{MODEL}.json"),
                    str(checkpoint)], check=True, capture_output=True)
    _cli("run", str(root), "--model", MODEL, "--weights", str(checkpoint), *FAST, "--every", "10")
    out = workdir / "out"
    _cli("hits", str(root), "--output", str(out / "hits_default"))
    _cli("hits", str(root), "--radius", "30", "--output", str(out / "hits_30px"))
    _cli("hits", str(root), "--radius", "200", "--output", str(out / "hits_200px"))
    _cli("report", str(root), "--radius", "30", "--output", str(out / "report"))
    _cli("render", str(root), "--radius", "30", "--output", str(out / "render"))
    prints: dict[str, str] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        prints[str(path.relative_to(out))] = _file(path)
    for store in sorted(workdir.rglob("*.densepose")):
        for key, value in _store(store).items():
            prints[f"store/{store.name}/{key}"] = value
    return prints


def compare(before: dict[str, str], after: dict[str, str]) -> int:
    keys = sorted(set(before) | set(after))
    differing = [k for k in keys if before.get(k) != after.get(k)]
    for key in differing:
        print(f"DIFFERS  {key}: {before.get(key, 'missing')[:12]} -> {after.get(key, 'missing')[:12]}")
    print(f"{len(keys) - len(differing)} of {len(keys)} outputs identical")
    return 1 if differing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, help="where to write the fingerprint (JSON)")
    parser.add_argument("--workdir", type=Path, help="keep the export and outputs here (default: a temporary folder)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        return compare(*(json.loads(p.read_text()) for p in args.compare))
    if args.out is None:
        parser.error("give OUT.json or --compare BEFORE AFTER")
    import napari_densepose_gaze

    print(f"package: {Path(napari_densepose_gaze.__file__).parent}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        prints = fingerprint(workdir)
    args.out.write_text(json.dumps(prints, indent=1, sort_keys=True) + "\n")
    print(f"{len(prints)} outputs fingerprinted into {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
