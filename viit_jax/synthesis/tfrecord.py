"""A TFRecord writer of tf.train.Example records with bytes features, without TensorFlow.

Synthesis is a text job; importing TensorFlow only to write its records costs 5-10 s per start
(and a restart after a kill pays it again). The formats are small and stable:

  TFRecord:  uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
             (little endian; masked = ((crc >> 15 | crc << 17) + 0xa282ead8) mod 2^32)
  Example:   features (1) -> Features; Features: map<string, Feature> feature (1);
             Feature: bytes_list (1) -> BytesList; BytesList: repeated bytes value (1).

tests/test_synthesize.py reads the files back with tf.data and tf.io.parse_single_example.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import BinaryIO


def _crc_table() -> list[int]:
  table = []
  for n in range(256):
    c = n
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1   # Castagnoli polynomial, reflected
    table.append(c)
  return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  table = _TABLE
  for b in data:
    crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  out = bytearray()
  while True:
    byte = n & 0x7F
    n >>= 7
    if n:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited protobuf field (wire type 2)."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_example(features: Mapping[str, bytes]) -> bytes:
  """A serialized tf.train.Example with one bytes value per feature (keys in sorted order)."""
  entries = b""
  for key in sorted(features):
    feature = _field(1, _field(1, features[key]))          # Feature.bytes_list.value
    entries += _field(1, _field(1, key.encode()) + _field(2, feature))   # map entry
  return _field(1, entries)                                # Example.features


def write_record(f: BinaryIO, data: bytes) -> None:
  length = struct.pack("<Q", len(data))
  f.write(length)
  f.write(struct.pack("<I", _masked_crc(length)))
  f.write(data)
  f.write(struct.pack("<I", _masked_crc(data)))


def write_examples(f: BinaryIO, rows: Iterable[Mapping[str, str]]) -> None:
  """Writes each row (str -> str) as one tf.train.Example of bytes features."""
  for row in rows:
    write_record(f, encode_example({k: v.encode("utf-8") for k, v in row.items()}))
