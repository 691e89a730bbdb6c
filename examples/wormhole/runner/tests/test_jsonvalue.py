import math

import pytest

from runner.jsonvalue import to_json_object, to_json_value


def test_converts_nested_containers_to_plain_json() -> None:
    source = {"a": (1, 2.5, None), "b": {"c": [True, "x"]}}
    assert to_json_value(source) == {"a": [1, 2.5, None], "b": {"c": [True, "x"]}}


def test_copies_containers() -> None:
    inner = [1]
    result = to_json_object({"list": inner})
    inner.append(2)
    assert result == {"list": [1]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {1, 2}}, r"value\.a: set is not a JSON value"),
        ({1: "x"}, "object keys must be strings"),
        ([math.inf], r"value\[0\]: non-finite number"),
    ],
)
def test_rejects_non_json(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_json_value(value)


def test_object_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="expected an object, got list"):
        to_json_object([1, 2], "input")
