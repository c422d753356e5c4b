"""Omniglot on the real copy (``$METAZOO_DATA/omniglot-py``): counts, splits, cache, download."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metazoo.data import EpisodeSampler, MissingDataError, SamplerConfig, make_sampler
from metazoo.data.omniglot import (
    DownloadError,
    download,
    list_characters,
    load_omniglot,
    omniglot_split,
    split_classes,
)

needs_omniglot = pytest.mark.usefixtures("omniglot_data")  # skips, or fails in CI, without it


@pytest.fixture(scope="module")
def omniglot():
    return load_omniglot()  # decoded once into $METAZOO_CACHE, shared by all tests


@needs_omniglot
def test_real_counts(omniglot):
    characters = list_characters()
    background = [c for c in characters if "images_background" in c[2][0]]
    assert len(background) == 964 and len(characters) - len(background) == 659
    assert omniglot.num_classes == 1623 and len(omniglot.superclass_names) == 50
    assert omniglot.images.shape == (32460, 1, 28, 28) and omniglot.images.dtype == torch.uint8
    assert omniglot.class_counts.tolist() == [20] * 1623
    whole = EpisodeSampler(omniglot, SamplerConfig(5, 1, 15, rotations=True), "omniglot-all")
    assert whole.num_classes == 1623 * 4


@needs_omniglot
def test_images_are_inverted_lanczos_resizes(omniglot):
    first = list_characters()[0][2][0]
    with Image.open(first) as image:
        expected = 255 - np.asarray(image.convert("L").resize((28, 28), Image.LANCZOS))
    assert torch.equal(omniglot.images[0, 0], torch.from_numpy(expected))
    # strokes are bright on a black background (LANCZOS rings by a few levels at most)
    assert omniglot.images[:, :, 0, 0].max() < 16 and (omniglot.images > 127).float().mean() < 0.2


@needs_omniglot
def test_shipped_split_sizes_and_disjointness():
    sizes = {"vinyals": (1028, 172, 423), "maml": (1100, 100, 423)}
    for name, expected in sizes.items():
        splits = [set(split_classes(name, s)) for s in ("train", "val", "test")]
        assert tuple(len(s) for s in splits) == expected
        assert len(set.union(*splits)) == 1623
    val_alphabets = {n.split("/")[0] for n in split_classes("vinyals", "val")}
    assert val_alphabets == {
        "Armenian",
        "Bengali",
        "Early_Aramaic",
        "Hebrew",
        "Mkhedruli_(Georgian)",
    }
    assert split_classes("vinyals", "test")[0] == "Gurmukhi/character42"


@needs_omniglot
def test_benchmark_samplers_and_rotations(omniglot):
    train = make_sampler("omniglot-5w1s")
    assert train.num_classes == 1028 * 4 and len(train.superclasses) == 33  # 25 + 8 alphabets
    assert make_sampler("omniglot-5w1s", split="val").num_classes == 172 * 4
    test = make_sampler("omniglot-20w5s", split="test")
    assert test.num_classes == 423 * 4
    episode = test.episode(0)
    assert episode.support_x.shape == (100, 1, 28, 28) and episode.query_x.shape == (300, 1, 28, 28)
    maml = make_sampler("omniglot-5w1s", class_split="maml")
    assert maml.num_classes == 1100 * 4
    assert make_sampler("omniglot-5w1s", rotations=False).num_classes == 1028


@needs_omniglot
def test_omniglot_batches_are_deterministic_and_match_the_data(omniglot):
    a = make_sampler("omniglot-5w1s").batch(0, 32)
    b = make_sampler("omniglot-5w1s").batch(0, 32)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.classes, b.classes)
    assert a.support_x.shape == (32, 5, 1, 28, 28) and a.query_x.shape == (32, 75, 1, 28, 28)
    other = make_sampler("omniglot-5w1s", seed=1).batch(0, 32)
    assert not torch.equal(a.classes, other.classes)
    # each support image is one of its class's 20 images, rotated by its class's rotation
    train = omniglot_split("train")
    sampler = make_sampler("omniglot-5w1s")
    for label, cls in enumerate(a.classes[0].tolist()):
        turns, base = divmod(cls, train.num_classes)
        stored = train.images[train.labels == base].float() / 255
        image = torch.rot90(a.support_x[0, label], -turns, dims=(-2, -1))
        assert any(torch.equal(image, s) for s in stored)
        assert sampler.class_name(cls).startswith(train.class_names[base])


def test_missing_root_names_path_env_and_download_command(tmp_path):
    with pytest.raises(MissingDataError) as info:
        make_sampler("omniglot-5w1s", root=str(tmp_path))
    message = str(info.value)
    assert f"no folder {tmp_path}/omniglot-py/images_background" in message
    assert "METAZOO_DATA" in message
    assert "python -m metazoo.data download omniglot" in message


def _zip_tree(folder: Path, name: str, images: dict[str, np.ndarray]) -> str:
    """Write ``folder/name.zip`` holding ``name/<path>.png`` images; return its md5."""
    archive = folder / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path, array in images.items():
            png = folder / "tmp.png"
            Image.fromarray(array).convert("1").save(png)
            zipped.write(png, f"{name}/{path}")
    return hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_from_local_zips_checks_md5(tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    stroke = np.full((105, 105), 255, np.uint8)
    stroke[40:60, 50] = 0
    md5 = {
        "images_background": _zip_tree(
            server,
            "images_background",
            {f"Latin/character0{i}/0{i}_01.png": stroke for i in (1, 2)},
        ),
        "images_evaluation": _zip_tree(
            server, "images_evaluation", {"Keble/character01/03_01.png": stroke}
        ),
    }
    root = tmp_path / "data"
    folder = download(root, url_prefix=server.as_uri(), md5=md5)
    assert folder == root / "omniglot-py"
    characters = list_characters(root)
    assert [(a, c, len(p)) for a, c, p in characters] == [
        ("Latin", "character01", 1),
        ("Latin", "character02", 1),
        ("Keble", "character01", 1),
    ]
    with pytest.raises(DownloadError, match="has md5 [0-9a-f]{32}, not the expected 0{32} "):
        download(
            root / "other", url_prefix=server.as_uri(), md5={**md5, "images_background": "0" * 32}
        )
    assert not (root / "other").exists()  # no empty folder, no temporary file left behind


def test_empty_character_folder_is_an_error(tmp_path):
    for set_name in ("images_background", "images_evaluation"):
        (tmp_path / "omniglot-py" / set_name / "Latin" / "character01").mkdir(parents=True)
    with pytest.raises(ValueError, match="empty class folder .*Latin/character01: no .png files"):
        list_characters(tmp_path)


@needs_omniglot
def test_within_alphabet_and_diverse_alphabets_on_real_omniglot():
    within = make_sampler("omniglot-20w1s", hierarchy="within")
    for classes in within.batch(0, 8).classes.tolist():
        alphabets = {within.class_name(c).split("/")[0] for c in classes}
        assert len(alphabets) == 1
    diverse = make_sampler("omniglot-5w1s", meta_batch_diversity=True)
    batch = diverse.batch(0, 32)  # 32 tasks, 33 alphabets in the train split: all different
    alphabets = [
        {diverse.class_name(c).split("/")[0] for c in row} for row in batch.classes.tolist()
    ]
    assert all(len(a) == 1 for a in alphabets)
    assert len({a.pop() for a in alphabets}) == 32
