"""Meta-Dataset's TFRecord form without TensorFlow: CRC-32C, the record framing, tf.train.Example
decoding (checked on bytes protobuf itself serialized), and a source of .tfrecords classes read
through the Meta-Dataset reader."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from PIL import Image

from metazoo.data.metadataset import metadataset_split
from metazoo.data.tfrecord import crc32c, masked_crc32c, parse_example, read_records

#: tf.train.Example{image: bytes_list [89 50 4e 47 00 ff], label: int64_list [1023],
#: neg: int64_list [-2, 5], score: float_list [0.5, -1.25]}, as google.protobuf serializes it.
EXAMPLE = bytes.fromhex(
    "0a550a130a05696d616765120a0a080a0689504e4700ff0a0f0a056c6162656c12061a040a02ff070a160a036e"
    "6567120f1a0d0a0bfeffffffffffffffff01050a150a0573636f7265120c120a0a080000003f0000a0bf"
)


def test_crc32c_matches_the_standard_check_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)
    assert crc32c(b"") == 0 and masked_crc32c(b"") == 0xA282EAD8


def test_examples_decode_as_protobuf_wrote_them():
    assert parse_example(EXAMPLE) == {
        "image": [b"\x89PNG\x00\xff"],
        "label": [1023],
        "neg": [-2, 5],
        "score": [0.5, -1.25],
    }


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _example(image: bytes, label: int) -> bytes:
    """Meta-Dataset's record: features image (bytes_list) and label (int64_list, packed)."""
    features = _field(1, _field(1, b"image") + _field(2, _field(1, _field(1, image))))
    features += _field(1, _field(1, b"label") + _field(2, _field(3, _field(1, _varint(label)))))
    return _field(1, features)


def _write_records(path, records) -> None:
    with open(path, "wb") as f:
        for data in records:
            header = struct.pack("<Q", len(data))
            f.write(header + struct.pack("<I", masked_crc32c(header)) + data)
            f.write(struct.pack("<I", masked_crc32c(data)))


def _png(value: int, size=(10, 14)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, 255 - value, 9)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_tfrecords_source_reads_through_the_meta_dataset_reader(tmp_path):
    folder = tmp_path / "metadataset" / "dtd"
    folder.mkdir(parents=True)
    spec = {"classes_per_split": {"TRAIN": 2, "VALID": 0, "TEST": 1}, "file_pattern": "{}.tfrecords"}  # fmt: skip
    (folder / "dataset_spec.json").write_text(json.dumps(spec))
    for c in range(3):
        _write_records(folder / f"{c}.tfrecords", [_example(_png(10 * c + i), c) for i in range(4)])
    assert [parse_example(r)["label"] for r in read_records(folder / "1.tfrecords")] == [[1]] * 4
    train = metadataset_split("train", "dtd", tmp_path, 8, 3)
    assert train.images.shape == (8, 3, 8, 8) and train.labels.tolist() == [0] * 4 + [1] * 4
    assert train.images[:, 0, 3, 3].tolist() == [0, 1, 2, 3, 10, 11, 12, 13]
    assert np.all(train.images[:, 2].numpy() == 9)


def test_corrupt_files_name_the_file_and_the_place(tmp_path):
    path = tmp_path / "0.tfrecords"
    _write_records(path, [_example(_png(1), 0), _example(_png(2), 0)])
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"0.tfrecords: record at byte \d+ is truncated"):
        list(read_records(path))
    path.write_bytes(b"\x07" + data[1:])
    with pytest.raises(ValueError, match="0.tfrecords: corrupt record header at byte 0"):
        list(read_records(path))
