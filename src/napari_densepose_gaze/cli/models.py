"""``densepose-gaze models``: list the zoo models, download or check their weights."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DensePoseGazeError
from .codes import EXIT_FAILED, EXIT_OK
from .printing import print_table

__all__ = ["add_models"]


def add_models(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models",
        help="list the DensePose models, download or check their weights",
        description="List the DensePose model-zoo models (* marks the default), whether their weights "
        "are in the cache, and where. Downloads go to --cache-dir, else $NAPARI_DENSEPOSE_GAZE_CACHE, "
        "else the user cache folder.",
    )
    parser.add_argument("--download", metavar="NAME", help="download a model's weights (a zoo name, or 'all')")
    parser.add_argument("--verify", action="store_true",
                        help="check the SHA-256 prefix of every cached weights file (exit 1 if one is wrong)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR", help="weights cache folder")
    parser.set_defaults(handler=_models)


def _models(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..engine import zoo
    from ..engine.weights import cache_dir_for, resolve_weights

    if args.download:
        names = list(zoo.ZOO) if args.download == "all" else [zoo.get_config(args.download).name]
        for name in names:
            print(f"Fetching {name} ...", file=sys.stderr)
            path = resolve_weights(name, cache_dir=args.cache_dir, progress=True)
            print(f"{name}: {path}", file=sys.stderr)
    status = _verify_cached(args.cache_dir) if args.verify else {}
    print(f"Weights cache: {cache_dir_for(args.cache_dir)}")
    print_table(_model_rows(args.cache_dir, status), sys.stdout)
    bad = [name for name, ok in status.items() if not ok]
    if bad:
        print(f"densepose-gaze: {len(bad)} cached weights file(s) failed the check: {', '.join(bad)}. "
              "Delete them and download again (densepose-gaze models --download NAME).", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _verify_cached(cache_dir: Path | None) -> dict[str, bool]:
    """Zoo name -> whether its cached file matches the published SHA-256 prefix (cached files only)."""
    from ..engine import zoo
    from ..engine.weights import resolve_weights, weights_state

    result: dict[str, bool] = {}
    for name in zoo.ZOO:
        if weights_state(name, cache_dir) != "downloaded":
            continue
        try:
            resolve_weights(name, cache_dir=cache_dir, download=False, progress=False)
            result[name] = True
        except DensePoseGazeError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            result[name] = False
    return result


def _model_rows(cache_dir: Path | None, verified: dict[str, bool]) -> list[dict[str, str]]:
    from ..engine import zoo
    from ..engine.weights import cached_path, weights_state

    rows = []
    for name, cfg in zoo.ZOO.items():
        state = weights_state(name, cache_dir)
        if name in verified:
            state = "verified" if verified[name] else "CORRUPT"
        rows.append({
            # the zoo's own default, read when listed: a zoo swapped in (tests, a fork) names its own
            "": "*" if name == zoo.DEFAULT_MODEL else "",
            "model": name,
            "weights": state,
            "path": str(cached_path(cfg, cache_dir)),
        })
    return rows
