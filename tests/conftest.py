from collections.abc import Iterator

import pytest

from tests.support import kill_started_daemons


@pytest.fixture(autouse=True)
def no_daemon_outlives_its_test() -> Iterator[None]:
    yield
    kill_started_daemons()
