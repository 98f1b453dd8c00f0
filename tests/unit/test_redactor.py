"""The Redactor masks secret values in what runs record, without breaking what it masks."""

from __future__ import annotations

import orjson

from runner.secrets import Redactor


def test_a_secret_that_looks_like_json_masks_without_breaking_the_json() -> None:
    redactor = Redactor(["1234", "true"])
    assert redactor.value({"n": 1234, "s": "pin 1234", "b": True}) == {
        "n": "***",
        "s": "pin ***",
        "b": True,
    }
    assert orjson.loads(redactor.json('{"n": 1234, "t": "true"}')) == {"n": "***", "t": "***"}


def test_a_secret_is_masked_inside_strings_keys_lists_and_url_encoded() -> None:
    redactor = Redactor(["a+b/c="])
    value = {
        "Bearer a+b/c=": ["x a+b/c= y", "?k=a%2Bb%2Fc%3D", "?k=a%2Bb%2Fc%3D".replace("%2F", "/")]
    }
    masked = redactor.value(value)
    assert masked == {"Bearer ***": ["x *** y", "?k=***", "?k=a%2Bb/c%3D"]}


def test_nothing_to_mask_leaves_values_alone() -> None:
    redactor = Redactor()
    assert not redactor
    value = {"a": [1, "b"]}
    assert redactor.value(value) is value
    assert redactor.json('{"a":1}') == '{"a":1}'
