"""@record behaves as the @dataclass it replaced, for what this package uses."""

from __future__ import annotations

import copy
import pickle

import pytest

from cni_bridge_py.record import FrozenInstanceError, field, fields, record, replace


@record(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default=())
    notes: list[str] = field(default_factory=list)


@record
class Box:
    content: str
    items: list[int] = field(default_factory=list)


def test_construction_defaults_and_factories() -> None:
    p = Point(1)
    assert (p.x, p.y, p.tags, p.notes) == (1, 0, (), [])
    assert Point(1, 2, ("a",)).tags == ("a",)
    assert Point(x=3, y=4) == Point(3, 4)
    assert Point(1).notes is not Point(1).notes
    assert Point.y == 0 and Point.tags == ()  # class attributes, as dataclasses leaves them


def test_bad_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, (), [], 5)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point(1, z=2)  # type: ignore[call-arg]


def test_equality_hash_and_repr() -> None:
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(2, 1)
    assert Point(1) != object()
    assert hash(Point(1, 2, ("a",), None)) == hash(Point(1, 2, ("a",), None))  # type: ignore[arg-type]
    assert repr(Point(1)) == "Point(x=1, y=0, tags=(), notes=[])"
    assert Box.__hash__ is None
    assert Box("a") == Box("a")
    assert Point.__match_args__ == ("x", "y", "tags", "notes")


def test_frozen_refuses_assignment() -> None:
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y
    box = Box("a")
    box.content = "b"
    assert box == Box("b")


def test_fields_replace_copy_and_pickle() -> None:
    assert fields(Point) == ("x", "y", "tags", "notes")
    p = Point(1, 2)
    assert replace(p, y=5) == Point(1, 5)
    assert copy.copy(p) == p and copy.deepcopy(p) == p
    assert pickle.loads(pickle.dumps(p)) == p
