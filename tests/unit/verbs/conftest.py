from __future__ import annotations

import pytest

from tests.doubles.kernel import FakeLinks
from tests.doubles.world import World
from tests.unit.verbs.support import NETNS


@pytest.fixture
def world() -> World:
    """A host with the container's namespace already made, as a runtime makes it before ADD."""
    made = World()
    made.netns(NETNS)
    return made


@pytest.fixture
def red(world: World) -> FakeLinks:
    return world.kernel.namespaces[NETNS]
