"""Providers built from mixins share one namespace: two mixins that define the same name (a private
helper most often) silently replace one another, whichever comes later in the MRO losing. A name
may be defined twice only by a class and its own subclass (an ordinary override), or as one of the
cooperative hooks below, where each definition hands on to the next with super()."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections import defaultdict

import strata.services

# Hooks every mixin may add to: server start-up and shutdown, and the authorizer's per-request
# targets. Each definition but the last in the MRO must call super() or the later ones never run.
COOPERATIVE = {"start", "stop", "request_targets"}


def providers() -> list[type]:
    found = []
    for mod in pkgutil.iter_modules(strata.services.__path__):
        try:
            module = importlib.import_module(f"strata.services.{mod.name}.provider")
        except ModuleNotFoundError:
            continue
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and cls.__module__ == module.__name__ and name.endswith("Provider"):
                found.append(cls)
    return found


def _passes_on(cls: type, name: str) -> bool:
    try:
        source = inspect.getsource(vars(cls)[name])
    except TypeError:  # not a function
        return False
    return re.search(rf"super\(\)\.{name}\(", source) is not None


def collisions(provider: type) -> list[str]:
    """Names defined by two classes of `provider`'s MRO where neither class inherits from the
    other (the provider itself may wrap anything: its definitions are deliberate)."""
    owners: dict[str, list[type]] = defaultdict(list)
    for cls in provider.__mro__[1:]:
        for name in vars(cls):
            if not (name.startswith("__") and name.endswith("__")):
                owners[name].append(cls)
    found = []
    for name, classes in owners.items():
        clash = [
            (a, b)
            for i, a in enumerate(classes)
            for b in classes[i + 1 :]
            if not issubclass(a, b) and not issubclass(b, a)
        ]
        if not clash:
            continue
        if name in COOPERATIVE:
            broken = [c.__name__ for c in classes[:-1] if not _passes_on(c, name)]
            if broken:
                found.append(f"{provider.__name__}.{name}: {broken} do not call super().{name}()")
            continue
        pairs = ", ".join(f"{a.__name__}/{b.__name__}" for a, b in clash)
        found.append(f"{provider.__name__}.{name} defined by unrelated mixins {pairs}")
    return found


def test_the_check_sees_a_helper_defined_by_two_mixins() -> None:
    class Core:
        def start(self) -> None: ...

    class A(Core):
        def _helper(self) -> int:
            return 1

        def start(self) -> None:
            super().start()

    class B(Core):
        def _helper(self) -> int:
            return 2

        def start(self) -> None: ...

    class C(Core):
        def start(self) -> None:
            super().start()

    class Provider(A, B, C): ...

    assert collisions(Provider) == [
        "Provider._helper defined by unrelated mixins A/B",
        "Provider.start: ['B'] do not call super().start()",
    ]


def test_no_two_mixins_of_a_provider_define_the_same_name() -> None:
    mixed = [p for p in providers() if len(p.__mro__) > 3]
    assert {p.__name__ for p in mixed} >= {"RDSProvider", "ElastiCacheProvider", "EC2Provider", "S3Provider"}
    assert [c for p in mixed for c in collisions(p)] == []
