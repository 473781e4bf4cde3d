"""Putting a results store folder in place atomically, and recognising one that is not complete.

A store is built in a hidden sibling folder (``.<name>.creating-<random>``, or
``.<hash of name>.creating-<random>`` where the name would be too long for a
file name), fsynced, and renamed onto the target, so the target is at every moment either
absent (or empty), or a complete store. Replacing a store (``overwrite``), or
finishing one whose making was cut short, swaps its parts under a marker file
that is put there first and taken away only after the new ``zarr.json`` (with
the store attributes, which make a folder a store) is in place: a folder with
that marker and no store attributes is an *incomplete* store, which the next
creation replaces instead of refusing. So are the half-made folders of versions
that created stores in place (a zarr group and store parts only). A new store
has every part from the start (the head U, V arrays included), so nothing is
added or removed once it is in place, where other processes may already use it.

Creators of stores in one parent folder serialise on an ``flock`` of that
folder, so two processes making the same store at once end up with one store,
which the second opens.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import zarr
from zarr.codecs import BloscCodec

from .durable import fsync_dir
from .errors import DensePoseGazeError
from .store_claims import WRITERS_FOLDER
from .store_errors import open_error
from .store_head_uv import HEAD_UV_NAMES, create_head_uv_array
from .store_log import LOG_NAME

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["ATTRS_KEY", "STORE_PARTS", "is_incomplete", "is_store", "make_store_folder", "open_store_group"]

ATTRS_KEY = "napari_densepose_gaze"
PERSON_IDS_NAME = "person_ids.csv"
#: The arrays every store has (older stores lack the head U, V arrays, :mod:`.store_head_uv`).
ARRAY_NAMES = ("labels", "persons")
_ALL_ARRAYS = (*ARRAY_NAMES, *HEAD_UV_NAMES)
# Present while a store's parts are being replaced; a name nobody else uses, so
# its presence alone says "an incomplete store", whatever else the folder holds.
_REPLACING_NAME = ".densepose-store-incomplete"
#: Everything a store consists of: replacing a store replaces exactly these, never a whole folder.
STORE_PARTS = ("zarr.json", *_ALL_ARRAYS, LOG_NAME, PERSON_IDS_NAME, WRITERS_FOLDER, _REPLACING_NAME)
# Without a lock on the parent folder a creator's temporary folder is only
# taken for abandoned once it is this old (building one takes milliseconds).
_ABANDONED_BUILD_S = 600.0
# The longest file name most file systems take (bytes), and the random part of a temporary folder's name.
_NAME_MAX = 255
_RANDOM_HEX = 12


def make_store_folder(
    folder: Path, shape: tuple[int, int, int], attrs: dict[str, Any], *, exist_ok: bool, overwrite: bool
) -> bool:
    """Make the store folder (see :meth:`.ResultsStore.create`); False: there is one already, to resume."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with creating_in(folder.parent) as locked:
            remove_abandoned_builds(folder, all_of_them=locked)
            if is_store(folder) and not overwrite:
                if not exist_ok:
                    raise _already_a_store(folder)
                return False
            replace = is_store(folder) or is_incomplete(folder)
            if not replace and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
                raise DensePoseGazeError(
                    f"{folder} exists and is not a results store: choose a new or empty "
                    "folder for the results."
                )
            if build_and_install(folder, lambda tmp: build_store(tmp, shape, attrs), replace=replace, locked=locked):
                return True
            if not exist_ok:  # another process made it between our look and our rename
                raise _already_a_store(folder)
            return False
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise DensePoseGazeError(
                f"Cannot create a results store in {folder}: its name is {len(os.fsencode(folder.name))} bytes, "
                f"more than the file system allows ({_NAME_MAX}). Choose a folder with a shorter name."
            ) from exc
        raise DensePoseGazeError(
            f"Cannot create a results store in {folder}: {exc}. Choose a folder "
            "you can write to, with free space."
        ) from exc


def open_store_group(folder: Path, mode: str, *, format_version: int) -> zarr.Group:
    """The zarr group of the store in ``folder``, checked to be a complete store this version reads."""
    if not folder.is_dir():
        raise DensePoseGazeError(
            f"No results store at {folder}: the folder does not exist. Check the "
            "path, or run DensePose on the recording first."
        )
    try:  # an unreadable store is no "not a store": say so, with what to do
        (folder / "zarr.json").open("rb").close()
    except PermissionError as exc:
        raise open_error(folder, exc) from exc
    except OSError:
        pass  # absent or odd: is_store tells what the folder is
    if not is_store(folder):
        hint = (" Its making was cut short: run DensePose again to make it anew."
                if is_incomplete(folder) else " Choose the folder the results were written to.")
        raise DensePoseGazeError(
            f"{folder} is not a results store of napari-densepose-gaze (no store "
            f"attributes in zarr.json).{hint}"
        )
    try:
        group = zarr.open_group(store=folder, mode=mode)
        info = group.attrs[ATTRS_KEY]
        if int(info["format_version"]) > format_version:
            raise DensePoseGazeError(
                f"The results store {folder} was written by a newer version of "
                "napari-densepose-gaze: update the package to read it."
            )
        missing = [n for n in ARRAY_NAMES if n not in group]
        if missing or not (folder / LOG_NAME).is_file():
            raise DensePoseGazeError(
                f"The results store {folder} is incomplete (missing "
                f"{', '.join(missing) or LOG_NAME}). Create it anew with overwrite=True "
                "or choose another folder."
            )
    except (OSError, KeyError, ValueError) as exc:
        raise open_error(folder, exc) from exc
    return group


def _already_a_store(folder: Path) -> DensePoseGazeError:
    return DensePoseGazeError(
        f"{folder} already holds a results store. Open it to resume "
        "(exist_ok=True), pass overwrite=True to delete it and start over, "
        "or choose another folder."
    )


def is_store(folder: Path) -> bool:
    """Whether ``folder`` holds a complete store (its marker: the store attributes in zarr.json)."""
    meta = folder / "zarr.json"
    try:  # is_file() too raises for some names (one too long for the file system): no store there either
        return meta.is_file() and ATTRS_KEY in json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False


def is_incomplete(folder: Path) -> bool:
    """Whether ``folder`` holds the parts of a store whose making or replacing was cut short."""
    if not folder.is_dir() or is_store(folder):
        return False
    if (folder / _REPLACING_NAME).is_file():
        return True
    # Left by versions that created stores in place: a zarr group and store parts, nothing of anyone else's
    # (a folder with other files, say another program's zarr store, is never taken for one of ours).
    entries = {p.name for p in folder.iterdir()}
    return "zarr.json" in entries and entries <= set(STORE_PARTS)


@contextlib.contextmanager
def creating_in(parent: Path) -> Iterator[bool]:
    """Hold the creators' lock of ``parent``; yields whether a lock could be taken at all."""
    try:
        fd = os.open(parent, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        try:
            if fcntl is None:
                raise OSError("no flock")
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError:  # no flock on this platform or file system: creation still works, unserialised
            locked = False
        yield locked
    finally:
        os.close(fd)


def build_store(folder: Path, shape: tuple[int, int, int], attrs: dict[str, Any]) -> None:
    """Write an empty store into ``folder`` (a fresh temporary folder)."""
    group = zarr.open_group(store=folder, mode="w-", zarr_format=3)
    # Blosc/zstd without shuffle: label maps of 1200x1600 px shrink to a
    # few kB; one chunk per frame matches how frames are written and shown.
    for name in ARRAY_NAMES:
        group.create_array(
            name,
            shape=shape,
            dtype="uint8",
            chunks=(1, shape[1], shape[2]),
            compressors=BloscCodec(cname="zstd", clevel=5, shuffle="noshuffle"),
            fill_value=0,
            dimension_names=("frame", "y", "x"),
        )
    for name in HEAD_UV_NAMES:
        create_head_uv_array(group, name, group["labels"])
    (folder / LOG_NAME).touch()
    group.attrs[ATTRS_KEY] = attrs


def build_and_install(folder: Path, build: Callable[[Path], None], *, replace: bool, locked: bool) -> bool:
    """Build a store with ``build(temporary folder)`` and put it at ``folder``.

    ``folder`` must be absent or empty, or (``replace``) hold a store, complete
    or not, whose parts are replaced. Returns False when another creator's
    store took the place first. ``locked``: whether the caller holds :func:`creating_in`.
    """
    parent = folder.parent
    tmp = parent / f"{_build_prefix(folder)}{uuid.uuid4().hex[:_RANDOM_HEX]}"
    try:
        tmp.mkdir()
        build(tmp)
        _fsync_tree(tmp)
        if replace:
            _replace_parts(tmp, folder)
            return True
        try:
            os.rename(tmp, folder)  # onto an absent or empty folder only
        except OSError:
            if is_store(folder):
                return False
            raise
        fsync_dir(parent)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_parts(tmp: Path, folder: Path) -> None:
    # The marker goes first and comes off last, so a kill at any step leaves an
    # incomplete store (which the next creation finishes) or a complete one.
    marker = folder / _REPLACING_NAME
    marker.touch()
    fsync_dir(folder)
    (folder / "zarr.json").unlink(missing_ok=True)
    (folder / PERSON_IDS_NAME).unlink(missing_ok=True)
    (folder / LOG_NAME).unlink(missing_ok=True)
    for name in (*_ALL_ARRAYS, WRITERS_FOLDER):
        shutil.rmtree(folder / name, ignore_errors=True)
    for name in (*_ALL_ARRAYS, LOG_NAME):
        os.rename(tmp / name, folder / name)
    os.replace(tmp / "zarr.json", folder / "zarr.json")
    fsync_dir(folder)
    marker.unlink()
    fsync_dir(folder)


def _build_prefix(folder: Path) -> str:
    """The start of the names of ``folder``'s temporary build folders, short enough for any store name."""
    prefix = f".{folder.name}.creating-"
    if len(os.fsencode(prefix)) + _RANDOM_HEX > _NAME_MAX:
        prefix = f".{hashlib.sha256(os.fsencode(folder.name)).hexdigest()[:32]}.creating-"
    return prefix


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        else:
            fsync_dir(path)
    fsync_dir(root)


def remove_abandoned_builds(folder: Path, *, all_of_them: bool) -> None:
    """Delete temporary folders that killed creators of ``folder`` left beside it.

    Under the creators' lock (``all_of_them``) no live creator has one, so any
    left is a killed one's; without the lock only old ones are surely abandoned.
    """
    now = time.time()
    prefix = _build_prefix(folder)
    for path in (p for p in folder.parent.iterdir() if p.name.startswith(prefix)):
        try:
            if all_of_them or now - path.stat().st_mtime > _ABANDONED_BUILD_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass
