"""Errors that become quarantine rows keep class, reason and detail across a process boundary."""

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from shardsmith.errors import LabelFileError, RecordError, ShardsmithError
from shardsmith.media.masks import MaskError


def _raise(kind: str):
    if kind == "record":
        raise RecordError("decode_failed", "bad pixels in x.dcm")
    if kind == "label":
        raise LabelFileError("train.csv: line 3: not UTF-8", reason="label_file_encoding")
    raise MaskError("rle_invalid", "odd number of RLE tokens")


@pytest.mark.parametrize(("kind", "cls", "reason"), [
    ("record", RecordError, "decode_failed"),
    ("label", LabelFileError, "label_file_encoding"),
    ("mask", MaskError, "rle_invalid"),
])
def test_errors_pickle_with_reason(kind, cls, reason):
    with pytest.raises(ShardsmithError) as info:
        _raise(kind)
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is cls and back.reason == reason and str(back) == str(info.value)


def test_error_raised_in_a_worker_arrives_whole():
    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(RecordError) as info:
            pool.submit(_raise, "record").result()
    assert info.value.reason == "decode_failed" and "x.dcm" in info.value.detail


def test_label_file_error_is_still_a_value_error():
    assert issubclass(LabelFileError, ValueError)
    assert LabelFileError("f.csv: line 1: empty").reason == "label_file_invalid"
