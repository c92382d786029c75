"""A targeted fix for kombu's Redis transport, so a Redis restart cannot kill a worker.

The crash (kombu 5.7.0, celery 5.7.0, seen in about one Redis restart of three or
six under ``--pool gevent``): on a broker connection error, celery's
``Consumer.on_connection_error_after_connected`` calls ``connection.collect()`` and
then ``connection.close()``.

1. ``collect()`` closes the default channel, the one holding the prefetched and
   acks_late messages. When the consumer loop has a BRPOP in flight, kombu's
   ``Channel.close`` first reads its reply (``_brpop_read``, kombu#1733); with Redis
   gone that raises a ConnectionError *before* the channel is marked closed.
   ``maybe_close_channel`` swallows it, so the channel stays open with its
   deliveries.
2. ``collect()`` goes on to close the other channels (a second error, from the gossip
   channel deleting its auto-delete fanout queue, ends that loop before the default
   channel comes up again) and then sets ``transport.client = None``.
3. ``connection.close()`` closes the default channel once more, now for real: it
   drops its Redis pools and restores the unacked messages, which needs a new pool,
   built from ``transport.client``:
   ``QoS.restore_unacked -> Channel.conn_or_acquire -> _create_client -> pool ->
   _get_pool -> _connparams -> conninfo.hostname`` on None: ``AttributeError``.
   ``ignore_errors`` lets only connection and channel errors through, so it ends
   ``Consumer.start`` and the worker exits ("Unrecoverable error").

The fix: a connection error while reading the in-flight BRPOP reply no longer aborts
``Channel.close``. That reply is lost with the connection (and any message it popped
with it; our reconcile and orphan sweep re-enqueue the PENDING tasks), and the rest
of the close runs at once, while the transport still has its client: the unacked
messages are restored if Redis is already back, or the restore fails with a
ConnectionError that kombu and celery handle, and either way the channel is closed,
so the later ``connection.close()`` has nothing left to do.

Remove this once kombu's ``Channel.close`` tolerates a dead BRPOP connection;
``tests/workers/test_broker_patches.py`` reproduces the crash without the patch.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("taskfleet.broker")

_MARK = "_taskfleet_tolerates_dead_brpop"


def install() -> None:
    """Patch ``kombu.transport.redis.Channel.close`` (idempotent)."""
    from kombu.transport import redis as kombu_redis

    channel_cls = kombu_redis.Channel
    original = channel_cls.close
    if getattr(original, _MARK, False):
        return
    if not hasattr(channel_cls, "_brpop_read") or not hasattr(channel_cls, "_in_poll"):
        log.warning("kombu's redis Channel changed; the close patch is not installed")
        return

    def close(self: Any) -> None:
        if self._in_poll and not self.closed:
            try:
                self._brpop_read()  # what kombu's close does first; resets _in_poll
            except kombu_redis.Empty:
                pass
            except self.connection_errors as exc:
                log.info("a BRPOP was in flight when the broker went away (%r); closing anyway", exc)
        original(self)

    setattr(close, _MARK, True)
    close.__doc__ = original.__doc__
    channel_cls.close = close
