"""The worker survives the broker cleanup that follows a Redis restart (see
``workers/broker_patches.py``), on a real redis-server that the test stops."""

from __future__ import annotations

import contextlib

import pytest
from kombu import Connection, Consumer, Exchange, Queue
from kombu.common import ignore_errors

from tests.conftest import _unavailable
from tests.servers import RedisServer
from workers import broker_patches


@pytest.fixture
def own_redis():
    server = RedisServer()  # not the session's server: this test stops it
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - reported as skip/fail
        _unavailable("redis-server", exc)
    try:
        yield server
    finally:
        server.stop()


def test_cleaning_up_after_redis_went_away_mid_brpop_does_not_crash(own_redis):
    broker_patches.install()
    conn = Connection(own_redis.url)
    try:
        # The task consumer: three messages delivered and not yet acked (acks_late).
        tasks = Queue("t", Exchange("t", "direct"), "t")
        with conn.Producer() as producer:
            for i in range(3):
                producer.publish({"i": i}, exchange=tasks.exchange, routing_key="t", declare=[tasks])
        unacked: list = []
        conn.Consumer(tasks, callbacks=[lambda body, m: unacked.append(m)], accept=["json"]).consume()
        while len(unacked) < 3:
            conn.drain_events(timeout=2)
        channel = conn.default_channel
        # A second channel like Celery's gossip: an auto-delete fanout queue, whose
        # close deletes that queue and so fails while Redis is down.
        gossip = conn.channel()
        Consumer(gossip, Queue("g", Exchange("gx", "fanout"), auto_delete=True), no_ack=True).consume()
        assert gossip.client is not None  # cached by the consumer loop in the worker
        # The consumer loop has a BRPOP in flight when Redis goes away.
        conn.transport.cycle._register_BRPOP(channel)
        assert channel._in_poll
        own_redis.stop()

        # What celery's Consumer.on_connection_error_after_connected does:
        with contextlib.suppress(Exception):  # celery ignores any error here too
            conn.collect(socket_timeout=2)
        # Unpatched, this raised AttributeError: 'NoneType' object has no attribute
        # 'hostname' (the channel's deferred close restoring unacked messages after
        # collect() had cleared the transport's client), which killed the worker.
        ignore_errors(conn, conn.close)
        assert channel.closed
    finally:
        own_redis.stop()
