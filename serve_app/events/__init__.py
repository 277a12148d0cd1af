"""Job events for SSE streams, the ZMQ bridge and cancelling runners: in-process or over Redis."""

from serve_app.events.base import Event, EventBus, EventBusError, Subscription, SubscriptionLagged
from serve_app.events.hub import EventHub, NullHub, RedisStreamHub
from serve_app.events.memory import MemoryEventBus, MemorySubscription
from serve_app.events.redis import RedisEventBus, RedisSubscription

__all__ = [
    "Event",
    "EventBus",
    "EventBusError",
    "EventHub",
    "MemoryEventBus",
    "MemorySubscription",
    "NullHub",
    "RedisEventBus",
    "RedisStreamHub",
    "RedisSubscription",
    "Subscription",
    "SubscriptionLagged",
]
