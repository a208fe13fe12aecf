"""key_tag: only an unset key maps to the "no key" tag; a blank key is an error, a key gives a keyed tag."""

from __future__ import annotations

import pytest

from shardsmith.config import KEY_ENV
from shardsmith.pseudonym import NO_KEY_TAG, MissingKeyError, key_tag


def test_unset_key_is_the_documented_no_key_case(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("SHARDSMITH_DEMO", raising=False)
    assert key_tag() == NO_KEY_TAG


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_key_raises_a_clear_error(monkeypatch, blank):
    monkeypatch.setenv(KEY_ENV, blank)
    with pytest.raises(MissingKeyError, match="blank"):
        key_tag()


def test_key_gives_a_keyed_tag_that_changes_with_the_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "secret-one")
    one = key_tag()
    monkeypatch.setenv(KEY_ENV, "secret-two")
    two = key_tag()
    assert len(one) == 16 and one != two and NO_KEY_TAG not in (one, two)
    assert "secret" not in one


def test_demo_mode_uses_the_demo_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("SHARDSMITH_DEMO", "1")
    assert key_tag() not in (NO_KEY_TAG, "")
