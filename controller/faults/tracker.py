"""Fault lifecycle, pure: observations in time in, opened / updated / resolved transitions out.

No I/O, no clock: instants come with the observations. One :class:`FaultTracker` is owned
by the controller's fault loop (like :class:`controller.loop.reconcile.Tracked`, it is plain
mutable memory; nothing in it waits or reads the time).

Rules per (subject, fault type), subject being a luminaire or a gateway:

* **one open fault**: a condition that keeps holding updates ``last_seen`` and ``count`` of
  the open fault; it never opens a second one.
* **debounce to raise**: open only once the condition held in ``raise_count`` consecutive
  observations spanning at least ``raise_s`` seconds (from the first to the latest).
* **debounce to clear**: resolve only once it was absent in ``clear_count`` consecutive
  observations spanning at least ``clear_s`` seconds.
* **unknown** observations (see :class:`controller.faults.rules.Evaluation`) neither raise
  nor clear; a streak whose previous observation is older than ``max_gap_s`` starts over,
  so stale evidence never completes a debounce.
* **suppression**: while a gateway's latest observation shows gatewayOffline or supplyLoss,
  or one of those is open on it, the faults in
  :data:`controller.faults.rules.EXPLAINED_BY_GATEWAY` of its luminaires are treated as
  unknown and their streaks start over: nothing opens, nothing is duplicated, nothing
  already open is resolved. Feed the gateway's observation before its luminaires' ones
  (:meth:`FaultTracker.observe_poll` does).
* **by hand**: the DB layer acknowledges and resolves; :meth:`FaultTracker.resolve_by_hand`
  forgets the open fault, so a condition that persists opens a new one after a full
  debounce.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from controller.faults.rules import (
    EXPLAINED_BY_GATEWAY,
    FAULTS,
    GATEWAY_SUPPRESSORS,
    Evaluation,
    Evidence,
    FaultType,
    Severity,
    SubjectKind,
)

__all__ = [
    "DEFAULT_DEBOUNCE",
    "DEFAULT_PER_TYPE",
    "Debounce",
    "FaultTracker",
    "Observation",
    "OpenFault",
    "Subject",
    "TrackerConfig",
    "Transition",
    "TransitionKind",
]


@dataclass(frozen=True, slots=True, order=True)
class Subject:
    """What a fault is about: a luminaire or a gateway, by database id."""

    kind: SubjectKind
    id: int

    @classmethod
    def luminaire(cls, luminaire_id: int) -> Subject:
        return cls(SubjectKind.LUMINAIRE, luminaire_id)

    @classmethod
    def gateway(cls, gateway_id: int) -> Subject:
        return cls(SubjectKind.GATEWAY, gateway_id)


@dataclass(frozen=True, slots=True)
class Debounce:
    """How long a condition must hold to open a fault, and be gone to resolve it.

    Both the count and the duration must be reached (with a 10 s poll, 3 observations and
    60 s means 7 polls). ``raise_count``/``clear_count`` >= 1; seconds >= 0.
    """

    raise_count: int = 3
    raise_s: float = 60.0
    clear_count: int = 3
    clear_s: float = 120.0

    def __post_init__(self) -> None:
        if self.raise_count < 1 or self.clear_count < 1:
            raise ValueError("raise_count and clear_count must be >= 1")
        if self.raise_s < 0 or self.clear_s < 0:
            raise ValueError("raise_s and clear_s must be >= 0")


DEFAULT_DEBOUNCE = Debounce()
DEFAULT_PER_TYPE: Mapping[FaultType, Debounce] = MappingProxyType(
    {
        # A gateway poll already waits its own timeout; two silent polls are enough.
        FaultType.GATEWAY_OFFLINE: Debounce(
            raise_count=2, raise_s=30.0, clear_count=2, clear_s=60.0
        ),
        # The gateway's mains report is a measurement, not a guess: confirm once.
        FaultType.SUPPLY_LOSS: Debounce(raise_count=2, raise_s=10.0, clear_count=2, clear_s=60.0),
    }
)


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Debounce and severity policy.

    ``update_every_s``: while a fault stays open and keeps being seen, emit an ``updated``
    transition (``last_seen``, ``count``) at most this often; None never.
    ``max_gap_s``: a streak whose previous observation is older than this starts over.
    """

    debounce: Debounce = DEFAULT_DEBOUNCE
    per_type: Mapping[FaultType, Debounce] = field(default_factory=lambda: dict(DEFAULT_PER_TYPE))
    severities: Mapping[FaultType, Severity] = field(default_factory=dict)
    update_every_s: float | None = 900.0
    max_gap_s: float = 600.0

    def debounce_for(self, fault: FaultType) -> Debounce:
        return self.per_type.get(fault, self.debounce)

    def severity_of(self, fault: FaultType) -> Severity:
        return self.severities.get(fault, FAULTS[fault].severity)


@dataclass(frozen=True, slots=True)
class Observation:
    """The rules' verdict on one subject at one instant.

    ``gateway_id`` is the gateway a luminaire sits behind (for suppression); None for a
    gateway's own observation.
    """

    subject: Subject
    at: datetime
    evaluation: Evaluation
    gateway_id: int | None = None

    def __post_init__(self) -> None:
        if self.evaluation.kind != self.subject.kind:
            raise ValueError(f"a {self.evaluation.kind} evaluation for a {self.subject.kind}")
        if self.at.tzinfo is None:
            raise ValueError("observation instants must be timezone-aware")


class TransitionKind(StrEnum):
    """What happened to a fault. The tracker emits the first three; the DB layer builds
    ``acknowledged`` (and ``resolved`` by hand) through :class:`FaultTracker` methods."""

    OPENED = "opened"
    UPDATED = "updated"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of one fault, with what the crews' message needs.

    ``at``: when the change was decided (the observation instant, or the hand action);
    ``since``: the first observation of the streak that opened the fault; ``last_seen``: the
    latest observation where the condition held; ``count``: observations where it held since
    ``since``; ``evidence``: the latest measured-vs-expected values; ``actor``: who, for a
    change made by hand.
    """

    kind: TransitionKind
    subject: Subject
    fault_type: FaultType
    severity: Severity
    at: datetime
    since: datetime
    last_seen: datetime
    count: int
    evidence: Evidence | None = None
    gateway_id: int | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class OpenFault:
    """An open fault as the tracker knows it (what the DB stores; fed back after a restart)."""

    subject: Subject
    fault_type: FaultType
    severity: Severity
    since: datetime
    last_seen: datetime
    count: int
    evidence: Evidence | None = None
    gateway_id: int | None = None
    acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class _Track:
    """Memory of one (subject, type): open or not, and the current streak.

    The streak counts consecutive present observations while closed (towards opening), or
    consecutive absent observations while open (towards resolving).
    """

    fault: OpenFault | None = None
    streak: int = 0
    streak_since: datetime | None = None
    streak_last: datetime | None = None
    last_at: datetime | None = None
    updated_at: datetime | None = None


_IDLE = _Track()
_ORDER = tuple(sorted(FAULTS))
"""Fault types in a fixed order, so transitions of one observation come out deterministic."""


class FaultTracker:
    """Open, update and resolve faults from a stream of observations (see the module doc)."""

    def __init__(
        self, config: TrackerConfig | None = None, open_faults: Iterable[OpenFault] = ()
    ) -> None:
        self.config = config or TrackerConfig()
        self._tracks: dict[tuple[Subject, FaultType], _Track] = {}
        self._gateway_explains: dict[int, bool] = {}
        self.restore(open_faults)

    # -- state --------------------------------------------------------------------------

    def restore(self, open_faults: Iterable[OpenFault]) -> None:
        """Take over faults that are open in the database (after a restart)."""
        for fault in open_faults:
            self._tracks[(fault.subject, fault.fault_type)] = _Track(
                fault=fault, last_at=fault.last_seen, updated_at=fault.last_seen
            )

    def open_faults(self) -> list[OpenFault]:
        """Every open fault, ordered by subject then type."""
        found = [t.fault for t in self._tracks.values() if t.fault is not None]
        return sorted(found, key=lambda f: (f.subject, f.fault_type))

    def is_open(self, subject: Subject, fault: FaultType) -> bool:
        track = self._tracks.get((subject, fault))
        return track is not None and track.fault is not None

    def explains(self, gateway_id: int) -> bool:
        """Whether the gateway's state currently explains its luminaires' faults."""
        if self._gateway_explains.get(gateway_id, False):
            return True
        subject = Subject.gateway(gateway_id)
        return any(self.is_open(subject, fault) for fault in GATEWAY_SUPPRESSORS)

    # -- observations --------------------------------------------------------------------

    def observe_poll(
        self, gateway: Observation, luminaires: Iterable[Observation]
    ) -> list[Transition]:
        """One poll of one gateway: its own observation first, then its luminaires'."""
        transitions = self.observe(gateway)
        for observation in luminaires:
            transitions.extend(self.observe(observation))
        return transitions

    def observe(self, observation: Observation) -> list[Transition]:
        """Advance every fault type of the observed subject; return what changed."""
        subject, at, evaluation = observation.subject, observation.at, observation.evaluation
        if subject.kind is SubjectKind.GATEWAY:
            self._gateway_explains[subject.id] = bool(GATEWAY_SUPPRESSORS & set(evaluation.present))
        suppressed = (
            subject.kind is SubjectKind.LUMINAIRE
            and observation.gateway_id is not None
            and self.explains(observation.gateway_id)
        )
        transitions: list[Transition] = []
        absent = evaluation.absent
        present = evaluation.present
        tracks = self._tracks
        for fault in _ORDER:
            key = (subject, fault)
            track = tracks.get(key)
            if track is None:
                if fault not in present or (suppressed and fault in EXPLAINED_BY_GATEWAY):
                    continue  # idle and not holding: stays idle (the common case, kept cheap)
                track = _IDLE
            if track.last_at is not None and at < track.last_at:
                continue  # out of order: the newer observation already decided
            if suppressed and fault in EXPLAINED_BY_GATEWAY:
                track = replace(track, streak=0, streak_since=None, streak_last=None)
            elif fault in evaluation.present:
                track = self._present(
                    track, observation, fault, evaluation.present[fault], transitions
                )
            elif fault in absent:
                track = self._absent(track, observation, fault, transitions)
            else:
                continue
            self._store(key, replace(track, last_at=at))
        return transitions

    def _present(
        self,
        track: _Track,
        obs: Observation,
        fault_type: FaultType,
        evidence: Evidence,
        out: list[Transition],
    ) -> _Track:
        at = obs.at
        fault = track.fault
        if fault is not None:
            fault = replace(fault, last_seen=at, count=fault.count + 1, evidence=evidence)
            track = replace(track, fault=fault, streak=0, streak_since=None, streak_last=None)
            every = self.config.update_every_s
            if every is not None and (
                track.updated_at is None or (at - track.updated_at).total_seconds() >= every
            ):
                out.append(_transition(TransitionKind.UPDATED, fault, at))
                track = replace(track, updated_at=at)
            return track
        streak, since = self._extend(track, at)
        rule = self.config.debounce_for(fault_type)
        if streak >= rule.raise_count and (at - since).total_seconds() >= rule.raise_s:
            opened = OpenFault(
                subject=obs.subject,
                fault_type=fault_type,
                severity=self.config.severity_of(fault_type),
                since=since,
                last_seen=at,
                count=streak,
                evidence=evidence,
                gateway_id=obs.gateway_id,
            )
            out.append(_transition(TransitionKind.OPENED, opened, at))
            return _Track(fault=opened, updated_at=at)
        return replace(track, streak=streak, streak_since=since, streak_last=at)

    def _absent(
        self, track: _Track, obs: Observation, fault_type: FaultType, out: list[Transition]
    ) -> _Track:
        at = obs.at
        if track.fault is None:
            return _IDLE  # a raise streak is broken by one absent observation
        streak, since = self._extend(track, at)
        rule = self.config.debounce_for(fault_type)
        if streak >= rule.clear_count and (at - since).total_seconds() >= rule.clear_s:
            out.append(_transition(TransitionKind.RESOLVED, track.fault, at))
            return _IDLE
        return replace(track, streak=streak, streak_since=since, streak_last=at)

    def _extend(self, track: _Track, at: datetime) -> tuple[int, datetime]:
        """The streak including ``at``: continued, or started over when empty or stale."""
        gap = timedelta(seconds=self.config.max_gap_s)
        if track.streak_since is None or track.streak_last is None or at - track.streak_last > gap:
            return 1, at
        return track.streak + 1, track.streak_since

    def _store(self, key: tuple[Subject, FaultType], track: _Track) -> None:
        if track.fault is None and track.streak == 0:
            self._tracks.pop(key, None)  # idle: keep memory proportional to what is going on
        else:
            self._tracks[key] = track

    # -- by hand ---------------------------------------------------------------------------

    def resolve_by_hand(
        self, subject: Subject, fault: FaultType, at: datetime, actor: str | None = None
    ) -> list[Transition]:
        """Someone closed the fault: forget it. Empty when it was not open.

        If the condition persists, a new fault opens after a full raise debounce counted
        from the next observation.
        """
        track = self._tracks.pop((subject, fault), None)
        if track is None or track.fault is None:
            return []
        return [_transition(TransitionKind.RESOLVED, track.fault, at, actor)]

    def acknowledge(
        self, subject: Subject, fault: FaultType, at: datetime, actor: str | None = None
    ) -> list[Transition]:
        """Someone took the fault on: it stays open (and still resolves by itself)."""
        key = (subject, fault)
        track = self._tracks.get(key)
        if track is None or track.fault is None:
            return []
        acked = replace(track.fault, acknowledged=True)
        self._tracks[key] = replace(track, fault=acked)
        return [_transition(TransitionKind.ACKNOWLEDGED, acked, at, actor)]


def _transition(
    kind: TransitionKind, fault: OpenFault, at: datetime, actor: str | None = None
) -> Transition:
    return Transition(
        kind=kind,
        subject=fault.subject,
        fault_type=fault.fault_type,
        severity=fault.severity,
        at=at,
        since=fault.since,
        last_seen=fault.last_seen,
        count=fault.count,
        evidence=fault.evidence,
        gateway_id=fault.gateway_id,
        actor=actor,
    )
