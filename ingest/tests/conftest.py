import pytest
from django.db import connection

from devices.tests.fixtures import (  # noqa: F401  (fixtures)
    device,
    device_and_secret,
    device_client,
    device_client_for,
    other_device_and_secret,
)
from ingest.partitions import (
    MONTHS_AHEAD,
    MONTHS_BEHIND_AT_SETUP,
    event_partitions_ensure,
    event_partitions_list,
)


@pytest.fixture
def partitions_restored():
    """For a transactional test that makes or drops months of the events table (PostgreSQL):
    partitions are DDL, which the flush after the test leaves as they are, so the months it
    made go and those it dropped (the migration's) are made again."""
    if connection.vendor != "postgresql":
        yield
        return
    before = {partition.name for partition in event_partitions_list()}
    yield
    with connection.cursor() as cursor:
        for partition in event_partitions_list():
            if partition.name not in before:
                cursor.execute(f"DROP TABLE {partition.name}")
    event_partitions_ensure(months_ahead=MONTHS_AHEAD, months_behind=MONTHS_BEHIND_AT_SETUP)
