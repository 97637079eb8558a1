"""The deal_stages stream: pipelines with their stages through POST /deal-stages.

The endpoint is create-only, so a pipeline is sent once all its stages are known: when the
input ends (or stops at a bad line). The SDK's periodic full drains leave pipelines waiting:
a pipeline sent early could never get the stages that arrive after it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from target_recotap.client import PipelineConflict
from target_recotap.normalize import PIPELINE_ID_NAMES, pipeline_part
from target_recotap.rejects import Received
from target_recotap.settings import PIPELINES_PER_REQUEST
from target_recotap.sinks.base import Item, RecotapSink


@dataclass
class PipelineDraft:
    """A pipeline as gathered so far from one or more records."""

    label: str | None = None
    stages: dict[str, str] = field(default_factory=dict)
    sources: list[Received] = field(default_factory=list)


class DealStagesSink(RecotapSink):
    """Groups records by ``pipelineId`` and creates each pipeline once."""

    id_fields = PIPELINE_ID_NAMES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drafts: dict[str, PipelineDraft] = {}

    @property
    def max_size(self) -> int:
        return sys.maxsize  # never "full": a pipeline waits for all its stages

    @property
    def current_size(self) -> int:
        return len(self._drafts)

    def add(self, record: dict[str, Any], received: Received) -> None:
        part = pipeline_part(record)
        draft = self._drafts.setdefault(part.pipeline_id, PipelineDraft())
        if part.label is not None:
            draft.label = part.label
        for stage_id, stage_label in part.stages:
            draft.stages[stage_id] = stage_label  # first position kept, latest label wins
        draft.sources.append(received)
        self.note_buffered(received)

    def process_batch(self, context: dict) -> None:
        if not self.target.input_finished:
            return
        drafts, self._drafts = self._drafts, {}
        ready = []
        for pipeline_id, draft in drafts.items():
            if draft.label is None or not draft.stages:
                missing = "label" if draft.label is None else "stages"
                reason = f"pipeline {pipeline_id!r} has no {missing}"
                self.reject(draft.sources, reason, pipeline_id)
                continue
            body = {
                "pipelineId": pipeline_id,
                "pipelineLabel": draft.label,
                "stages": [{"stageId": k, "stageLabel": v} for k, v in draft.stages.items()],
            }
            ready.append(Item(pipeline_id, body, draft.sources, draft.sources[0].position))
        size = min(self.batch_size_rows or PIPELINES_PER_REQUEST, PIPELINES_PER_REQUEST)
        for start in range(0, len(ready), size):
            self.dispatch(ready[start : start + size], self._send)
        self.note_unbuffered(())

    def _send(self, items: list[Item]) -> None:
        try:
            reply = self.client.push_pipelines([item.body for item in items])
        except PipelineConflict as conflict:
            self._after_conflict(items, conflict)
            return
        self.stats.add(sent=len(items))
        results = reply.data.get("results")
        created = {
            str(result.get("pipelineId"))
            for result in (results if isinstance(results, list) else [])
            if isinstance(result, dict) and result.get("status") == "created"
        }
        for item in items:
            if item.key in created:
                self.stats.add(accepted=1)
            else:
                self.reject(
                    item.sources, "Recotap's answer did not confirm it was created", item.key
                )

    def _after_conflict(self, items: list[Item], conflict: PipelineConflict) -> None:
        """Skip the pipelines that exist and send the rest, one by one if the 409 is unreadable."""
        existing = conflict.pipeline_ids or ({items[0].key} if len(items) == 1 else set())
        if not existing:
            self.logger.info(
                "Could not read which pipelines exist (%s): sending one by one", conflict
            )
            for item in items:
                self.deliver([item], self._send)
            return
        for item in items:
            if item.key in existing:
                self.stats.add(skipped_existing=1)
                self.logger.info(
                    "Pipeline %r already exists in Recotap: skipped (the API cannot update it)",
                    item.key,
                )
        rest = [item for item in items if item.key not in existing]
        if rest:
            self.deliver(rest, self._send)
