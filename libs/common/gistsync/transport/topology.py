"""Names and routes: which queues exist and where a message goes. Pure, no I/O.

The application passes its table in (`Table`); nothing here knows a message type.

- One topic exchange, `{prefix}.bus`. Work of one key (a user) goes to one of `partitions`
  queues per service, `{prefix}.{service}.p{n}` (single active consumer), routed by
  `{type}.p{n}` where `n` is the crc32 of the key modulo `partitions`. The rest goes to
  shared queues `{prefix}.{name}` routed by type: any replica answers.
- Queues dead-letter into `{prefix}.dead` → `{prefix}.dead_letters`, except request queues
  (`*.queries`): an expired request is nobody's failure.
- Broadcast types reach every listener's private queue; none need be listening.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

TICK = "partition.tick"


def partition_of(key: str, partitions: int) -> int:
    """The partition of a key: stable across processes and versions (crc32)."""
    return zlib.crc32(key.encode()) % partitions


def fair_share(partitions: int, replicas: int) -> int:
    return math.ceil(partitions / max(1, replicas))


def is_query_queue(name: str) -> bool:
    """Queues of requests that someone waits for; they are answered, never retried."""
    return name.endswith(".queries")


@dataclass(frozen=True)
class Table:
    """The application's routes: per service the types partitioned by key, per shared queue
    the types it takes, and the types only broadcast."""

    partitioned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    shared: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    broadcast: frozenset[str] = frozenset()

    @property
    def partitioned_types(self) -> frozenset[str]:
        return frozenset(kind for kinds in self.partitioned.values() for kind in kinds)


@dataclass(frozen=True)
class Topology:
    prefix: str
    partitions: int = 1
    table: Table = field(default_factory=Table)

    @property
    def bus(self) -> str:
        return f"{self.prefix}.bus"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead_letters"

    def queue(self, name: str) -> str:
        if name not in self.table.shared:
            raise KeyError(f"no queue {name!r} in the topology")
        return f"{self.prefix}.{name}"

    def partition(self, service: str, partition: int) -> str:
        if service not in self.table.partitioned or not 0 <= partition < self.partitions:
            raise KeyError(f"no partition {partition} of {service!r} in the topology")
        return f"{self.prefix}.{service}.p{partition}"

    def partition_of(self, key: str) -> int:
        return partition_of(key, self.partitions)

    def tick_key(self, service: str, partition: int) -> str:
        return f"{TICK}.{service}.p{partition}"

    def partition_keys(self, service: str, partition: int) -> list[str]:
        """What a partition queue is bound to: its types for that partition, and ticks."""
        kinds = self.table.partitioned[service]
        return [f"{kind}.p{partition}" for kind in kinds] + [self.tick_key(service, partition)]

    def routing_key(self, kind: str, partition: int | None) -> str:
        """A message's type, plus its partition for partitioned types."""
        if partition is not None and kind in self.table.partitioned_types:
            return f"{kind}.p{partition}"
        return kind

    def is_partitioned(self, kind: str) -> bool:
        return kind in self.table.partitioned_types

    def dead_queue_of(self, queue: str, routing_key: str) -> str:
        """The full name of the queue a message died in: `queue` is a shared queue's name
        or a partitioned service, whose partition is the routing key's last word."""
        if queue in self.table.shared:
            return self.queue(queue)
        suffix = routing_key.rpartition(".")[2]
        return f"{self.prefix}.{queue}.{suffix}" if suffix.startswith("p") else queue

    def queue_names(self) -> list[str]:
        """Every durable queue of the topology, dead letters included (to delete it whole)."""
        partitions = [
            self.partition(service, n)
            for service in self.table.partitioned
            for n in range(self.partitions)
        ]
        return partitions + [self.queue(name) for name in self.table.shared] + [self.dead_queue]

    def exchange_names(self) -> list[str]:
        return [self.bus, self.dead_exchange]
