"""One sink per stream kind: deals, deal_stages, accounts, sales_activities, and streams this
target skips."""

from typing import TYPE_CHECKING

from target_recotap.sinks.accounts import AccountsSink
from target_recotap.sinks.base import RecotapSink
from target_recotap.sinks.context import InputProgress, SinkContext, StreamSink, StreamStats
from target_recotap.sinks.deal_stages import DealStagesSink
from target_recotap.sinks.deals import DealsSink
from target_recotap.sinks.sales_activities import SalesActivitiesSink
from target_recotap.sinks.skipped import SkippedStreamSink

if TYPE_CHECKING:  # mypy checks here that every sink answers what the target calls on it
    _ANSWER_THE_TARGET: tuple[type[StreamSink], ...] = (
        DealsSink,
        DealStagesSink,
        SalesActivitiesSink,
        SkippedStreamSink,
        AccountsSink,
    )

__all__ = [
    "AccountsSink",
    "DealStagesSink",
    "DealsSink",
    "InputProgress",
    "RecotapSink",
    "SalesActivitiesSink",
    "SinkContext",
    "SkippedStreamSink",
    "StreamSink",
    "StreamStats",
]
