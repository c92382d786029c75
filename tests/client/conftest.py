"""One real stack for the client's tests (``tests/client_fleet.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client_fleet import Fleet, running_fleet


@pytest.fixture(scope="package")
def fleet(tmp_path_factory, postgres_url, real_redis) -> Iterator[Fleet]:
    home = tmp_path_factory.mktemp("client-stack")
    with running_fleet(home, postgres_url, real_redis, "tf_client") as found:
        yield found
