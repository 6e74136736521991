"""`@record`: the part of `@dataclass` this package uses, without its start-up cost.

dataclasses costs every one-shot run ~20 ms on a slow machine: the module imports inspect
(ast, dis, tokenize...) and each decorated class compiles and execs source for each of its
generated methods. A record's methods are generic functions closed over the field names,
made once per class without compiling anything: __init__ (positional or keyword arguments,
defaults, `field(default_factory=...)`), __repr__, __eq__, __match_args__, and with
`frozen=True` __hash__ and assignment refused (FrozenInstanceError, an AttributeError, like
dataclasses'). mypy sees it as a dataclass (PEP 681 dataclass_transform).

Construction is a little slower than a generated __init__ (a few microseconds per object):
nothing on a plugin's path builds more than a few dozen.
"""

TYPE_CHECKING = False  # not typing's: importing typing costs every plugin run
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
    C = TypeVar("C", bound=type)
else:

    def dataclass_transform(**_kwargs: object) -> "Callable[[C], C]":
        return lambda function: function


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


_MISSING: "Any" = object()


class _Field:
    __slots__ = ("default", "default_factory")

    def __init__(self, default: "Any", default_factory: "Callable[[], Any] | None") -> None:
        self.default = default
        self.default_factory = default_factory


def field(
    *, default: "Any" = _MISSING, default_factory: "Callable[[], Any] | None" = None
) -> "Any":
    """dataclasses.field(default=...) or field(default_factory=...): a default made per object."""
    return _Field(default, default_factory)


def fields(cls: type) -> tuple[str, ...]:
    """The field names of a record class (or instance), in declaration order."""
    names: tuple[str, ...] = cls.__record_fields__  # type: ignore[attr-defined]
    return names


def replace(obj: "T", **changes: "Any") -> "T":
    """A copy of the record `obj` with some fields changed (dataclasses.replace)."""
    values = {name: getattr(obj, name) for name in fields(type(obj))}
    values.update(changes)
    return type(obj)(**values)


@dataclass_transform(field_specifiers=(field,))
def record(cls: "C | None" = None, /, *, frozen: bool = False) -> "Any":
    """Decorate a class like @dataclass or @dataclass(frozen=True)."""

    def wrap(klass: "C") -> "C":
        return _build(klass, frozen)

    return wrap if cls is None else wrap(cls)


def _fields_of(cls: type) -> "tuple[tuple[str, ...], dict[str, Any], dict[str, Callable[[], Any]]]":
    """The field names in order, their plain defaults and their default factories."""
    # Not inspect.get_annotations: inspect is what this module avoids loading.
    names = tuple(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063
    defaults: dict[str, Any] = {}
    factories: dict[str, Callable[[], Any]] = {}
    for name in names:
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            if value.default_factory is not None:
                factories[name] = value.default_factory
                delattr(cls, name)
            elif value.default is not _MISSING:
                defaults[name] = value.default
                setattr(cls, name, value.default)  # dataclasses leaves the default there too
            else:
                delattr(cls, name)
        elif value is not _MISSING:
            defaults[name] = value
        elif defaults or factories:
            raise TypeError(f"non-default argument {name!r} follows default argument")
    return names, defaults, factories


def _init(
    names: "tuple[str, ...]",
    defaults: "dict[str, Any]",
    factories: "dict[str, Callable[[], Any]]",
    qualname: str,
) -> "Callable[..., None]":
    """A record's __init__: positional or keyword arguments, then defaults and factories."""
    known = frozenset(names)
    count = len(names)

    def __init__(self: "Any", *args: "Any", **kwargs: "Any") -> None:
        # Every field given, all by position or all by name: the common case, checked
        # quickly (~0.5 us an object against ~1-2 us on the general path below).
        if not kwargs and len(args) == count:
            self.__dict__.update(zip(names, args, strict=True))
            return
        if not args and len(kwargs) == count and kwargs.keys() == known:
            self.__dict__.update(kwargs)
            return
        if len(args) > count:
            raise TypeError(
                f"{qualname}.__init__() takes {count + 1} positional arguments"
                f" but {len(args) + 1} were given"
            )
        values = dict(zip(names, args, strict=False))  # fewer args than fields: defaults
        for key in kwargs:
            if key not in known:
                raise TypeError(f"{qualname}.__init__() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{qualname}.__init__() got multiple values for argument {key!r}")
        values.update(kwargs)
        if len(values) < count:
            for name in names:
                if name in values:
                    continue
                if name in defaults:
                    values[name] = defaults[name]
                elif name in factories:
                    values[name] = factories[name]()
                else:
                    raise TypeError(
                        f"{qualname}.__init__() missing 1 required positional argument: {name!r}"
                    )
        self.__dict__.update(values)

    return __init__


def _build(cls: "C", frozen: bool) -> "C":
    names, defaults, factories = _fields_of(cls)
    qualname = cls.__qualname__
    __init__ = _init(names, defaults, factories, qualname)

    def __repr__(self: "Any") -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{qualname}({inner})"

    def __eq__(self: "Any", other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return tuple(getattr(self, name) for name in names) == tuple(
            getattr(other, name) for name in names
        )

    own = cls.__dict__
    # dataclasses' rule: a class body's __hash__ is its own, except the None Python puts
    # there for a class that defines __eq__ alone.
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    cls.__init__ = __init__  # type: ignore[misc]
    if "__repr__" not in own:  # as dataclasses: a method the class defines stays
        cls.__repr__ = __repr__  # type: ignore[assignment,method-assign]
    if "__eq__" not in own:
        cls.__eq__ = __eq__  # type: ignore[assignment,method-assign]
    cls.__match_args__ = names  # type: ignore[attr-defined,misc]
    cls.__record_fields__ = names  # type: ignore[attr-defined]
    if frozen:

        def __hash__(self: "Any") -> int:
            return hash(tuple(getattr(self, name) for name in names))

        def __setattr__(self: "Any", name: str, _value: object) -> None:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self: "Any", name: str) -> None:
            raise FrozenInstanceError(f"cannot delete field {name!r}")

        if not explicit_hash:
            cls.__hash__ = __hash__  # type: ignore[assignment,method-assign]
        cls.__setattr__ = __setattr__  # type: ignore[assignment,method-assign]
        cls.__delattr__ = __delattr__  # type: ignore[assignment,method-assign]
    elif not explicit_hash:
        cls.__hash__ = None  # type: ignore[assignment]  # mutable, compared by value
    for method in (__init__, __repr__, __eq__):
        method.__qualname__ = f"{qualname}.{method.__name__}"
    return cls
