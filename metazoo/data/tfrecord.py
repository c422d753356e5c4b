"""Meta-Dataset's TFRecord form read without TensorFlow: the record framing and the few
``tf.train.Example`` fields its converter writes (``image``: encoded bytes, ``label``: int64).

A record is ``uint64 length | uint32 masked CRC-32C of length | data | uint32 masked CRC of data``
(little-endian). The length's CRC is checked, so a truncated or misaligned file fails at once;
the data's CRC is not (CRC-32C in pure Python would cost more than decoding the image, which
fails on corrupt bytes anyway). ``data`` is a protobuf ``Example{features: Features{feature:
map<string, Feature>}}`` and ``Feature`` one of ``bytes_list`` (1), ``float_list`` (2) or
``int64_list`` (3).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

__all__ = ["crc32c", "masked_crc32c", "read_records", "parse_example"]

_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ (0x82F63B78 if _crc & 1 else 0)  # Castagnoli, reflected
    _TABLE.append(_crc)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: the CRC rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: str | Path) -> Iterator[bytes]:
    """The records of a ``.tfrecords`` file, in order.

    Raises:
        ValueError: naming the file and byte offset of a truncated or corrupt record.
    """
    with open(path, "rb") as f:
        while header := f.read(12):
            offset = f.tell() - len(header)
            if len(header) < 12 or masked_crc32c(header[:8]) != struct.unpack("<I", header[8:])[0]:
                raise ValueError(f"{path}: corrupt record header at byte {offset}; reconvert it")
            length = struct.unpack("<Q", header[:8])[0]
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                raise ValueError(f"{path}: record at byte {offset} is truncated; reconvert it")
            yield data


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buffer[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _fields(buffer: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of a protobuf message, in order."""
    pos = 0
    while pos < len(buffer):
        key, pos = _varint(buffer, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buffer, pos)
        elif wire == 2:
            size, pos = _varint(buffer, pos)
            value, pos = buffer[pos : pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = buffer[pos : pos + width], pos + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}: not a tf.train.Example")
        yield number, wire, value


def _feature_values(feature: bytes) -> list:
    """The values of one ``Feature`` (bytes, floats or int64s)."""
    values: list = []
    for kind, _, body in _fields(feature):
        for number, wire, value in _fields(body):
            if number != 1:
                continue
            if kind == 1:
                values.append(bytes(value))
            elif kind == 2:  # packed (wire 2) or one float (wire 5)
                values.extend(struct.unpack(f"<{len(value) // 4}f", value))
            elif wire == 0:
                values.append(value - (1 << 64) if value >> 63 else value)
            else:  # packed varints
                pos = 0
                while pos < len(value):
                    item, pos = _varint(value, pos)
                    values.append(item - (1 << 64) if item >> 63 else item)
    return values


def parse_example(record: bytes) -> dict[str, list]:
    """A serialized ``tf.train.Example`` as ``{feature name: list of values}``."""
    example: dict[str, list] = {}
    for number, _, features in _fields(record):
        if number != 1:
            continue
        for _, _, entry in _fields(features):
            parts = {n: v for n, _, v in _fields(entry)}
            example[bytes(parts.get(1, b"")).decode()] = _feature_values(parts.get(2, b""))
    return example
