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


def _data_errors() -> list[tuple[ShardsmithError, str]]:
    """One instance of every user-facing data error outside errors.py, with the reason it must carry."""
    from shardsmith.media.dicom import MediaError, UnsupportedImageError, UnsupportedTransferSyntaxError
    from shardsmith.media.volume import VolumeError
    from shardsmith.schemas.roles import UnknownRoleError
    from shardsmith.schemas.vocabulary import UnknownLabelError
    from shardsmith.sources.werewolf.werebench import ConfigError
    from shardsmith.speech.base import MissingExtra, TranscriberUnavailable

    return [
        (MediaError("truncated", "x.png: PNG has no IEND chunk"), "truncated"),
        (UnsupportedImageError("x.dcm: 3 frames"), "unsupported_image"),
        (UnsupportedTransferSyntaxError("x.dcm: JPEG-LS", reason="unsupported_transfer_syntax"),
         "unsupported_transfer_syntax"),
        (VolumeError("non_finite_voxels", "ct.nii.gz: 12 NaN voxels"), "non_finite_voxels"),
        (UnknownRoleError("role 'Space Wizard' is not in the role table"), "unknown_role"),
        (UnknownLabelError("label 'Blob' of source 'x' is not in the vocabulary"), "unknown_label"),
        (ConfigError("config_contains_code", "Call at line 3"), "config_contains_code"),
        (TranscriberUnavailable("model folder lacks model.bin"), "transcriber_unavailable"),
        (MissingExtra("speech", "transcribing a video needs av"), "needs_extra_speech"),
    ]


@pytest.mark.parametrize("index", range(9))
def test_every_data_error_is_a_shardsmith_error_and_pickles(index: int) -> None:
    """Media, volume, role, label, config and speech errors share the base: one ``except``, one reason."""
    err, reason = _data_errors()[index]
    assert isinstance(err, ShardsmithError) and err.reason == reason
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and back.reason == reason and str(back) == str(err)
    assert vars(back) == vars(err)  # MissingExtra's extra/install hint survive too


def test_data_errors_keep_their_old_bases_and_messages() -> None:
    """Callers that catch KeyError / ValueError / RuntimeError, or print the error, see no change."""
    errs = dict((type(e).__name__, e) for e, _ in _data_errors())
    assert isinstance(errs["UnknownRoleError"], KeyError) and isinstance(errs["ConfigError"], ValueError)
    assert isinstance(errs["TranscriberUnavailable"], RuntimeError)
    assert str(errs["UnknownRoleError"]) == "role 'Space Wizard' is not in the role table"  # not quoted
    assert str(errs["ConfigError"]) == "config_contains_code: Call at line 3"
    assert str(errs["MediaError"]) == "x.png: PNG has no IEND chunk"
    assert "pip install 'shardsmith[speech]'" in str(errs["MissingExtra"])
