"""The deal_stages stream: pipelines with their stages through POST /deal-stages.

The endpoint is create-only, so a pipeline is sent once all its stages are known: when the
input has been read to its end (never at a bad line). The SDK's periodic full drains leave
pipelines waiting: a pipeline sent early could never get the stages that arrive after it. For
the same reason a pipeline one of whose records is rejected is not sent at all (its other
records are rejected with it), and a pipeline that exists already keeps the stages Recotap
has: ``report_existing`` says how those differ from the source's.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from target_recotap.endpoints import PIPELINES, Rejected
from target_recotap.errors import PipelineConflict, RecotapError
from target_recotap.normalize import PIPELINE_ID_NAMES, JSONNumber, pipeline_part
from target_recotap.settlement import Received
from target_recotap.sinks.base import Item, RecotapSink
from target_recotap.wording import plural


@dataclass
class PipelineDraft:
    """A pipeline as gathered so far from one or more records."""

    label: str | None = None
    stages: dict[str, str] = field(default_factory=dict)  # stageId -> label, as first seen
    orders: dict[str, JSONNumber] = field(default_factory=dict)  # stageId -> order, if given
    sources: list[Received] = field(default_factory=list)

    def ordered_stages(self) -> list[dict[str, str]]:
        """The stages by their order; ties, and then those without one, as first seen."""
        orders = self.orders
        ids = sorted(
            self.stages, key=lambda stage_id: (stage_id not in orders, orders.get(stage_id, 0))
        )
        return [{"stageId": stage_id, "stageLabel": self.stages[stage_id]} for stage_id in ids]


class DealStagesSink(RecotapSink):
    """Groups records by ``pipelineId`` and creates each pipeline once."""

    endpoint = PIPELINES
    id_fields = PIPELINE_ID_NAMES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drafts: dict[str, PipelineDraft] = {}
        # pipelineId -> which of its records was rejected while the input was read, and why.
        self._held_back: dict[str, str] = {}
        # The pipelines answered 409, from the sending threads: see report_existing.
        self._existing: list[Item] = []
        self._existing_lock = threading.Lock()

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
        for stage_id, stage_label, order in part.stages:
            draft.stages[stage_id] = stage_label  # first position kept, latest label wins
            if order is not None:
                draft.orders[stage_id] = order
        draft.sources.append(received)
        self.ledger.hold(received)

    def reject(
        self, sources: Sequence[Received], reason: str, record_id: str | None = None
    ) -> None:
        """Reject ``sources``; a record rejected on arrival holds its whole pipeline back.

        Created without that record's stages, a pipeline could never get them (the API is
        create-only), so its other records are rejected too and the dead letter replays the
        whole pipeline at once. A record with no usable pipelineId holds nothing back.
        """
        super().reject(sources, reason, record_id)
        if record_id is not None and not self.input.finished:
            why = f"the record on input line {sources[0].line_number} was rejected: {reason}"
            self._held_back.setdefault(record_id, why)

    def process_batch(self, context: dict) -> None:
        if not self.input.finished:
            return
        if not self.input.complete:
            # Stopped at a bad line: what came after it may hold more of these pipelines'
            # stages, and a pipeline can be created only once. They stay unsettled, so no
            # STATE passes them, and a rerun that reads its input to the end sends them whole.
            if self._drafts:
                self.logger.warning(
                    "%s not sent: the input stopped before its end, and a pipeline is created "
                    "once, with all its stages",
                    plural(len(self._drafts), "pipeline"),
                )
            return
        drafts, self._drafts = self._drafts, {}
        ready = []
        for pipeline_id, draft in drafts.items():
            held_back = self._held_back.get(pipeline_id)
            if held_back is not None:
                reason = f"held back with its pipeline, since {held_back}"
                self._reject_draft(draft, reason, pipeline_id)
                continue
            if draft.label is None or not draft.stages:
                missing = "label" if draft.label is None else "stages"
                self._reject_draft(draft, f"pipeline {pipeline_id!r} has no {missing}", pipeline_id)
                continue
            body = {
                "pipelineId": pipeline_id,
                "pipelineLabel": draft.label,
                "stages": draft.ordered_stages(),
            }
            ready.append(Item(pipeline_id, body, draft.sources))
        size = self.batch_limit
        for start in range(0, len(ready), size):
            self.dispatch(ready[start : start + size], self._send)

    def _reject_draft(self, draft: PipelineDraft, reason: str, pipeline_id: str) -> None:
        """A gathered pipeline that will not be sent: its records are rejected, and settle."""
        self.reject(draft.sources, reason, pipeline_id)
        self.ledger.settle(draft.sources)

    def _send(self, items: list[Item]) -> None:
        try:
            reply = self.client.push(self.endpoint, [item.body for item in items])
        except PipelineConflict as conflict:
            self._after_conflict(items, conflict)
            return
        self.stats.add(sent=len(items))
        outcomes = self.endpoint.outcomes(reply.data, (item.key for item in items))
        for item in items:
            outcome = outcomes[item.key]
            if isinstance(outcome, Rejected):
                self.reject(item.sources, outcome.reason, item.key)
            else:
                self.stats.add(accepted=1)

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
        skipped = [item for item in items if item.key in existing]
        self.stats.add(skipped_existing=len(skipped))
        with self._existing_lock:
            self._existing += skipped
        rest = [item for item in items if item.key not in existing]
        if rest:
            self.deliver(rest, self._send)

    def report_existing(self) -> None:
        """Once every request settled: compare the pipelines that existed with Recotap's copies.

        The API cannot update a pipeline, so a stage added or relabelled in the source since
        never reaches Recotap: one warning per pipeline that differs. GET /deal-stages is
        undocumented; when it does not answer, one warning says how many went unchecked.
        """
        if not self._existing:
            return
        try:
            stored = self.client.stored_pipelines()
        except RecotapError as exc:
            self._warn_not_compared(len(self._existing), str(exc))
            return
        unchanged = unlisted = 0
        # In input order: the order of their first records.
        for item in sorted(self._existing, key=lambda item: item.sources[0].position):
            held = stored.get(item.key)
            if held is None:
                unlisted += 1
                continue
            changes = pipeline_changes(item.body, held)
            if not changes:
                unchanged += 1
                continue
            self.logger.warning(
                "Pipeline %r in Recotap differs from the source, and the API cannot update it: "
                "%s. Change it in Recotap by hand, or give the source's pipeline a new pipelineId",
                item.key,
                "; ".join(changes),
            )
        if unchanged:
            self.logger.info(
                "Skipped %s already in Recotap: no change in the source",
                plural(unchanged, "pipeline"),
            )
        if unlisted:
            self._warn_not_compared(unlisted, f"GET {self.endpoint.path} did not list them")

    def _warn_not_compared(self, count: int, reason: str) -> None:
        self.logger.warning(
            "%s already existed in Recotap; changes to their stages cannot be applied through "
            "the API, and they were not compared with the source: %s",
            plural(count, "pipeline"),
            reason,
        )


def pipeline_changes(wanted: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    """How Recotap's copy of a pipeline differs from the one this run would create; [] if alike.

    Both are pipeline objects (``pipelineLabel``, ``stages`` of ``stageId``/``stageLabel``);
    each difference says which side holds what: ``stage s2 is 'Proposal' in Recotap, 'Offer'
    in the source``. The order of the stages is not compared: nothing says Recotap keeps or
    uses it.
    """
    changes = []
    label, held_label = wanted["pipelineLabel"], stored.get("pipelineLabel")
    if held_label != label:
        changes.append(f"its label is {held_label!r} in Recotap, {label!r} in the source")
    source, held = _stage_labels(wanted), _stage_labels(stored)
    missing = [f"{sid} {label!r}" for sid, label in source.items() if sid not in held]
    if missing:
        changes.append(f"Recotap lacks {_stages(missing)} {', '.join(missing)}")
    changes += [
        f"stage {sid} is {held[sid]!r} in Recotap, {label!r} in the source"
        for sid, label in source.items()
        if sid in held and held[sid] != label
    ]
    extra = [f"{sid} {label!r}" for sid, label in held.items() if sid not in source]
    if extra:
        changes.append(f"only Recotap has {_stages(extra)} {', '.join(extra)}")
    return changes


def _stages(listed: list[str]) -> str:
    return "stage" if len(listed) == 1 else "stages"


def _stage_labels(pipeline: Mapping[str, Any]) -> dict[str, Any]:
    """stageId -> stageLabel, in order; what is not a stage object is left out."""
    stages = pipeline.get("stages")
    return {
        str(stage.get("stageId")): stage.get("stageLabel")
        for stage in (stages if isinstance(stages, list) else [])
        if isinstance(stage, Mapping)
    }
