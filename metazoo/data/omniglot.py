"""Omniglot (Lake et al. 2015): 1623 handwritten characters of 50 alphabets, 20 drawings each.

Reads the tree that torchvision's download unpacks to,
``$METAZOO_DATA/omniglot-py/images_background|images_evaluation/<alphabet>/<character>/*.png``,
in sorted order (torchvision's ``Omniglot(download=False)`` refuses that tree without its zips).
Images are decoded once (LANCZOS resize to ``image_size``, inverted so strokes are 255) and cached
as one uint8 tensor under ``$METAZOO_CACHE/omniglot``, keyed by the size and a hash of the file list.
Class splits are files shipped in ``metazoo/data/splits/omniglot`` (see its README).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import torch

from metazoo.data.cache import cached, files_key, read_split_list
from metazoo.data.dataset import ClassDataset
from metazoo.data.images import decode_images
from metazoo.data.paths import data_root, require_dir

__all__ = [
    "FOLDER",
    "SETS",
    "URL_PREFIX",
    "ZIPS_MD5",
    "CLASS_SPLITS",
    "download",
    "list_characters",
    "load_omniglot",
    "split_classes",
    "omniglot_split",
]

FOLDER = "omniglot-py"
SETS = ("images_background", "images_evaluation")
#: torchvision's download location and checksums (torchvision.datasets.Omniglot).
URL_PREFIX = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
ZIPS_MD5 = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}
CLASS_SPLITS = ("vinyals", "maml")
_CACHE_VERSION = 1
DOWNLOAD_HINT = "Download it with `python -m metazoo.data download omniglot` (or --root DIR)."


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DownloadError(RuntimeError):
    """A dataset could not be downloaded; the message says what to do instead."""


def download(
    root: str | os.PathLike | None = None,
    url_prefix: str = URL_PREFIX,
    md5: dict[str, str] | None = None,
) -> Path:
    """Download and unpack both Omniglot zips into ``root/omniglot-py``; returns that folder.

    Zips already present are checked, not fetched again. A failure leaves no folder it created
    and no temporary file behind.

    Args:
        root: the data root (default ``$METAZOO_DATA``).
        url_prefix: where ``images_background.zip`` and ``images_evaluation.zip`` are (any URL
            ``urllib`` opens, ``file://`` included).
        md5: expected checksums per zip name (default: torchvision's).

    Raises:
        DownloadError: no network (with how to install the zips by hand), or a zip whose md5 is
            not the expected one (naming the file and what to do).
    """
    md5 = md5 or ZIPS_MD5
    target = data_root(root) / FOLDER
    created = [p for p in (target, *target.parents) if not p.exists()]
    target.mkdir(parents=True, exist_ok=True)
    try:
        for name in SETS:
            archive = target / f"{name}.zip"
            fetched = not archive.is_file()
            if fetched:
                _fetch(f"{url_prefix}/{name}.zip", archive, target)
            _check_md5(archive, md5[name], fetched, f"{url_prefix}/{name}.zip")
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(target)
    except BaseException:
        for folder in created:  # deepest first; only the ones still empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return target


def _fetch(url: str, archive: Path, target: Path) -> None:
    """``url`` saved as ``archive`` through a temporary file that never outlives a failure."""
    tmp = tempfile.NamedTemporaryFile(dir=target, prefix=f".{archive.name}.", delete=False)  # noqa: SIM115 - closed by the with below
    try:
        with tmp, urllib.request.urlopen(url) as response:
            tmp.write(response.read())
        os.replace(tmp.name, archive)
    except OSError as exc:  # URLError, timeouts and refused connections are OSErrors
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"cannot download {url} ({reason}). Without network, copy images_background.zip and "
            f"images_evaluation.zip from {URL_PREFIX} into {target} on another machine and run "
            "the command again (the zips are checked and unpacked), or put an unpacked "
            f"omniglot-py folder under {target.parent}"
        ) from None
    finally:
        Path(tmp.name).unlink(missing_ok=True)


def _check_md5(archive: Path, expected: str, fetched: bool, url: str) -> None:
    found = _md5(archive)
    if found == expected:
        return
    if fetched:
        archive.unlink()
        raise DownloadError(
            f"the file downloaded from {url} has md5 {found}, not the expected {expected} (a "
            f"proxy page or a changed file); nothing was kept. Try again, or download it by hand "
            f"to {archive}"
        )
    raise DownloadError(
        f"{archive} is already there but its md5 {found} is not the expected {expected} (an "
        "incomplete or corrupt download): delete it and run the command again, or replace it "
        "with the right file"
    )


def list_characters(root: str | os.PathLike | None = None) -> list[tuple[str, str, list[str]]]:
    """``(alphabet, character, [png paths])`` for every character, background set first, sorted.

    Raises:
        MissingDataError: the tree is not there (names the path, ``METAZOO_DATA`` and the fix).
        ValueError: a character folder holds no PNG.
    """
    base = data_root(root) / FOLDER
    characters = []
    for set_name in SETS:
        folder = require_dir(base / set_name, "Omniglot", DOWNLOAD_HINT)
        for alphabet in sorted(p.name for p in os.scandir(folder) if p.is_dir()):
            for character in sorted(p.name for p in os.scandir(folder / alphabet) if p.is_dir()):
                where = folder / alphabet / character
                pngs = sorted(f.name for f in os.scandir(where) if f.name.endswith(".png"))
                if not pngs:
                    raise ValueError(
                        f"empty class folder {where}: no .png files; re-download Omniglot"
                    )
                characters.append((alphabet, character, [str(where / f) for f in pngs]))
    return characters


def load_omniglot(
    root: str | os.PathLike | None = None,
    image_size: int = 28,
    workers: int | None = None,
) -> ClassDataset:
    """All 1623 characters (classes) with their alphabets (superclasses), decoded or from the cache.

    Args:
        root: the data root holding ``omniglot-py`` (default ``$METAZOO_DATA``).
        image_size: side of the square images.
        workers: decoding processes on a cache miss.

    Returns:
        A dataset with ``images (32460, 1, image_size, image_size)`` uint8 (strokes 255), classes
        named ``"<alphabet>/<character>"``, superclasses = alphabets.
    """
    characters = list_characters(root)
    relative = [f"{a}/{c}/{Path(p).name}" for a, c, ps in characters for p in ps]
    paths = [p for _, _, ps in characters for p in ps]
    key = files_key(paths, relative, _CACHE_VERSION, image_size)

    def build() -> dict:
        alphabets = sorted({a for a, _, _ in characters})
        counts = torch.tensor([len(ps) for _, _, ps in characters])
        return {
            "images": decode_images(paths, image_size, channels=1, invert=True, workers=workers),
            "labels": torch.repeat_interleave(torch.arange(len(characters)), counts),
            "class_names": [f"{a}/{c}" for a, c, _ in characters],
            "superclass": torch.tensor([alphabets.index(a) for a, _, _ in characters]),
            "superclass_names": alphabets,
        }

    fields = cached("omniglot", f"omniglot-{image_size}px-{key}", build)
    return ClassDataset(**fields, name="omniglot")


def split_classes(class_split: str, split: str) -> list[str]:
    """The ``"<alphabet>/<character>"`` names of a shipped class split.

    Args:
        class_split: ``"vinyals"`` (1028/172/423) or ``"maml"`` (1100/100/423).
        split: ``"train"``, ``"val"`` or ``"test"``.
    """
    if class_split not in CLASS_SPLITS:
        raise ValueError(f"class_split must be one of {CLASS_SPLITS}, got {class_split!r}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    return read_split_list("omniglot", f"{class_split}/{split}")


def omniglot_split(
    split: str,
    class_split: str = "vinyals",
    root: str | os.PathLike | None = None,
    image_size: int = 28,
) -> ClassDataset:
    """One split of Omniglot as a dataset (classes in the order of the split file)."""
    full = load_omniglot(root, image_size)
    index = {name: i for i, name in enumerate(full.class_names)}
    names = split_classes(class_split, split)
    missing = [n for n in names if n not in index]
    if missing:
        raise ValueError(
            f"Omniglot split {class_split}/{split}: {len(missing)} characters are not in the data "
            f"tree (first: {missing[0]}); the copy is incomplete. {DOWNLOAD_HINT}"
        )
    subset = full.subset([index[n] for n in names])
    subset.name = f"omniglot/{class_split}/{split}"
    return subset
