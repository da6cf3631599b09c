"""What changed since the last look, as changelog events. Pure: times are arguments.

The state is who holds each address (and since when), when each account and region was last
read completely, and the last HEARTBEAT. A poll reads every configured scope (account, region);
`reconcile_poll` compares what the successful reads claim with the state:

- an address no longer claimed by its holder's scope: UNASSIGN just after the start of the last
  read that saw it held (when it was released after that is not known, and a short-lived owner
  may have held it meanwhile: nobody's rather than the wrong owner's);
- an address with a new owner: ASSIGN at the interface's attachment time when AWS gives one that
  falls after the previous read of the scope (and not after this read finished) and the address
  is the interface's primary private one (derive.derive_claims gives no time for the others),
  else at the end of this read (it may have changed while the read went on); never before the
  old holder was last seen holding it (the end of the read that saw it; the end of this read of
  its scope when that is another, whose read does not tell when it let go). A moved address is
  first released as above: nobody's until its new owner's time. Every change is later than the
  previous read of its scope, so later than any HEARTBEAT already written, and later than the
  address's previous change. An ASSIGN names its interface's VPC when the claim knows it
  (interface_vpc_id); the same owner is written again only when its VPC is newly known;
- an address held by a scope whose read failed stays as it is: no UNASSIGN on missing data;
  unless a scope read now claims it: either the failed scope let go or both hold it (overlapping
  VPCs), so it is nobody's from just after the failed scope's last read;
- an address claimed by several interfaces (overlapping VPCs) has no owner while it is (its
  holder's release stamped as a move's), and the conflict is reported. It stays contested, nobody's,
  until every scope that claimed it has been read again: one claimant left while another's read
  fails is not alone, as far as the publisher knows; nor is one an event leaves (apply_event
  never ends a contest: the inventory it changes is as old as its scope's last read). Meanwhile each claimant's VPC has it:
  VPC_ASSIGN of the claimant's owner for that VPC, dated as its ASSIGN would be (the holder's,
  which had it all along, at the contest's UNASSIGN a poll found, its last write not failed),
  again when that owner changes; VPC_UNASSIGN, dated as an UNASSIGN, when the VPC no longer
  claims it, when two owners of one VPC claim it (never one of them), and for every VPC claim
  once the contest is over (the ASSIGN that ends it says who has it). A claimant whose VPC is
  not known has none; a VPC claim of a scope whose read failed is kept, as its owners are.

HEARTBEAT ts = the oldest of the latest complete reads of all configured scopes: every change up
to then has been observed and sent. A scope whose read failed holds the heartbeat back until it
is read again (flows wait for metadata rather than being attributed on missing changes).

`apply_event` applies a near-real-time change (an account's and region's inventory after a
CloudTrail/EventBridge event) the same way, at the event's time (a whole second: releases at its
start, new owners at its end). An event whose second ended before the last poll of its scope
began, or older than the last applied event, is stale: the state already reflects it. One in
the second that poll began only releases what it changes: the poll may show a later change.
A contest stays as it is, whoever the event leaves claiming the address (one account's VPCs
included): only a poll ends it. Only the addresses whose holders the event knows (`dated`) get
its times; another it changes is released as a poll would release it, and waits for the poll.
"""
import dataclasses
import ipaddress
import re
import time
from dataclasses import dataclass, field

from flowdredge.connectors.publisher.model import Owner, Scope
from flowdredge.schemas.metadata import (ASSIGN, HEARTBEAT, INTERFACE_VPC_ID, UNASSIGN, VPC_ASSIGN,
                                         VPC_UNASSIGN)
from flowdredge.schemas.settings import quoted

_RANK = {UNASSIGN: 0, VPC_UNASSIGN: 0, ASSIGN: 1, VPC_ASSIGN: 1}


@dataclass(frozen=True, slots=True)   # one per address: as model.Owner
class Holding:
    owner: Owner
    since_ms: int   # its latest change: the address's next one comes after it
    # An address's own holding: the VPC of its owner's interface (None: not known), which its
    # ASSIGN names (interface_vpc_id). None in vpc_holdings: the VPC is their key.
    vpc_id: str = None
    # When its owner took the address, if before since_ms (its ASSIGN written again, its VPC
    # newly known): a snapshot dates the owner then, as the job needs for the flows before.
    taken_ms: int = None


@dataclass(frozen=True)
class Observation:
    """One successful read of a scope: its claims, and the clock before and after reading."""
    scope: Scope
    claims: list
    started_ms: int
    finished_ms: int


@dataclass
class State:
    holdings: dict = field(default_factory=dict)    # ip -> Holding
    polled_ms: dict = field(default_factory=dict)   # Scope -> start of its last complete read
    seen_ms: dict = field(default_factory=dict)     # Scope -> end of its last complete read
    event_ms: dict = field(default_factory=dict)    # Scope -> time of its last applied event
    heartbeat_ms: int = None
    # A resumed state: when its snapshot was taken. A scope not read since stands as read then:
    # every change it shows is later (a HEARTBEAT of before may have been written).
    resumed_ms: int = None
    # ip -> the latest ts of a change of it whose write failed (some of a batch may have been
    # written): its next reconciliation writes its owner again, later than that.
    uncertain: dict = field(default_factory=dict)
    # ip -> its release's ts, while nobody holds it (contested: its latest change, a VPC's
    # included): a new owner's ASSIGN or VPC_ASSIGN comes after it (an event's exact time may be
    # earlier than a release a poll dated later). Dropped once the HEARTBEAT passes it: every
    # change after is later anyway.
    released: dict = field(default_factory=dict)
    # ip -> the scopes that claimed it together (nobody holds it): no owner until all are read.
    contested: dict = field(default_factory=dict)
    # ip -> {vpc id -> Holding}: a contested address's owner within each claimant VPC. Each
    # ip's dict is replaced, never changed, so copies may share it.
    vpc_holdings: dict = field(default_factory=dict)
    # ip -> {vpc id -> the ts of its VPC events whose writes failed}: each may have landed, and
    # is undone. Each ip's dict is replaced, never changed.
    vpc_uncertain: dict = field(default_factory=dict)

    def copy(self) -> "State":
        return dataclasses.replace(self, holdings=dict(self.holdings),
                                   polled_ms=dict(self.polled_ms), seen_ms=dict(self.seen_ms),
                                   event_ms=dict(self.event_ms), uncertain=dict(self.uncertain),
                                   released=dict(self.released), contested=dict(self.contested),
                                   vpc_holdings=dict(self.vpc_holdings),
                                   vpc_uncertain=dict(self.vpc_uncertain))

    def write_failed(self, events: list, contested: dict = None) -> "State":
        """This state, the addresses of `events` (a batch not known to be written) uncertain,
        and the contests the batch's reconciliation found (`contested`) kept. A VPC event's
        address is uncertain too (its plain owner is written again), and its ts goes in
        `vpc_uncertain` under its VPC: each such event may have landed, and is undone."""
        failed = self.copy()
        for ip, scopes in (contested or {}).items():
            failed.contested[ip] = failed.contested.get(ip, frozenset()) | scopes
        for event in events:
            if "ip" in event:
                failed.uncertain[event["ip"]] = max(failed.uncertain.get(event["ip"], event["ts"]),
                                                    event["ts"])
            if "vpc_id" in event:
                vpcs = failed.vpc_uncertain.get(event["ip"], {})
                failed.vpc_uncertain[event["ip"]] = {
                    **vpcs, event["vpc_id"]: vpcs.get(event["vpc_id"], frozenset()) | {event["ts"]}}
        return failed

    def polled(self, scope: Scope):
        """The start of the scope's last complete read, or the snapshot's time, or None."""
        return self.polled_ms.get(scope, self.resumed_ms)

    def seen(self, scope: Scope):
        """The end of the scope's last complete read, or the snapshot's time, or None."""
        return self.seen_ms.get(scope, self.resumed_ms)


@dataclass
class Reconciled:
    events: list            # changelog events (dicts), in ts order, HEARTBEAT last
    state: State            # the state once the events are written
    conflicts: list = field(default_factory=list)   # addresses claimed by several interfaces


def assign_event(ip: str, ts: int, owner: Owner, vpc_id: str = None) -> dict:
    """`vpc_id`: the VPC of the owner's interface, if known: the job gives it to the lines that
    interface logs without `vpc-id`."""
    event = {"type": ASSIGN, "ts": ts, "ip": ip, **owner.as_fields()}
    if vpc_id is not None:
        event[INTERFACE_VPC_ID] = vpc_id
    return event


def unassign_event(ip: str, ts: int) -> dict:
    return {"type": UNASSIGN, "ts": ts, "ip": ip}


def vpc_assign_event(ip: str, vpc_id: str, ts: int, owner: Owner) -> dict:
    return {"type": VPC_ASSIGN, "ts": ts, "ip": ip, "vpc_id": vpc_id, **owner.as_fields()}


def vpc_unassign_event(ip: str, vpc_id: str, ts: int) -> dict:
    return {"type": VPC_UNASSIGN, "ts": ts, "ip": ip, "vpc_id": vpc_id}


def heartbeat_event(ts: int) -> dict:
    return {"type": HEARTBEAT, "ts": ts}


def reconcile_poll(state: State, observations: list, configured: list) -> Reconciled:
    """`observations`: the successful reads of this poll; configured scopes without one failed."""
    reads = {o.scope: o for o in observations}
    floors = {scope: state.polled(scope) for scope in reads}

    def assign_ts(claim):
        read, floor = reads[claim.owner.scope], floors[claim.owner.scope]
        t = claim.attached_ms
        if t is None or (floor is not None and t <= floor) or t > read.finished_ms:
            t = read.finished_ms
        elif t % 1000 == 0:
            # AWS's attachment times are whole seconds: it came within that second, and the
            # old holder may have had the address until then: no owner, not the wrong one.
            t = min(t + 999, read.finished_ms)
        return t if floor is None else max(t, floor + 1)

    def release_ts(scope):
        if scope not in reads:   # no longer configured: unknown since it was last read
            seen = state.polled(scope)
            return 0 if seen is None else seen + 1
        floor = floors[scope]
        return reads[scope].started_ms if floor is None else floor + 1

    def held_until(prev, chosen):
        scope = prev.owner.scope
        if scope == chosen.owner.scope or scope not in reads:
            return state.seen(scope)
        return reads[scope].finished_ms

    def unknown_since(prev):
        """Just after the last read that saw `prev` hold its address: from then on a change AWS
        gives no time for may have happened."""
        seen = state.polled(prev.owner.scope)
        return None if seen is None else max(seen, prev.since_ms) + 1

    # A scope no longer configured (a snapshot of an earlier configuration) is never read
    # again: what it held is released, as by a read that found nothing.
    dropped = ({h.owner.scope for h in state.holdings.values()}
               | {scope for scopes in state.contested.values() for scope in scopes}
               | {h.owner.scope for vpcs in state.vpc_holdings.values() for h in vpcs.values()}
               ) - set(configured)
    claims = [c for o in observations for c in o.claims]
    result = _settle(state, claims, set(reads) | dropped, assign_ts, release_ts, unknown_since,
                     held_until, read_end=lambda scope: reads[scope].finished_ms
                     if scope in reads else None, others_failed=True, settles=True)
    for scope, read in reads.items():
        result.state.polled_ms[scope] = read.started_ms
        result.state.seen_ms[scope] = read.finished_ms
    polled = result.state.polled_ms
    if all(scope in polled for scope in configured) and configured:
        heartbeat = min(polled[scope] for scope in configured)
        if state.heartbeat_ms is None or heartbeat > state.heartbeat_ms:
            result.events.append(heartbeat_event(heartbeat))
            result.state.heartbeat_ms = heartbeat
            result.state.released = {ip: ts for ip, ts in result.state.released.items()
                                     if ts > heartbeat}
    return result


# How far an event may be dated after this host's clock: AWS's clock and a host's kept by NTP
# differ by far less. One dated later (9999: a hand-edited or broken line) was applied, its
# change dated there, which the job refuses, and every later event of its scope was stale.
EVENTS_AHEAD_MS = 60_000


def _second_end(event_ms: int) -> int:
    """CloudTrail and EventBridge give whole seconds: the change came by that second's end."""
    return event_ms + 999 if event_ms % 1000 == 0 else event_ms


def is_stale(state: State, scope: Scope, event_ms: int) -> bool:
    """Stale: the last read of the scope began after the event's second (the read saw it), or a
    later event was applied."""
    polled, applied = state.polled(scope), state.event_ms.get(scope)
    return ((polled is not None and _second_end(event_ms) <= polled)
            or (applied is not None and event_ms < applied))


def apply_event(state: State, scope: Scope, claims: list, event_ms: int,
                dated: set = None) -> Reconciled:
    """The scope's claims after an event at `event_ms` (check is_stale first). An address the
    event leaves claimed twice (a new interface with an address the inventory still gives an
    older one) is the older one's only until just after the last read that saw it: when it let
    go is not known. `dated` (None: every address): the addresses whose holders the event
    knows at its time (cloudtrail.dated_addresses); another one it moves is released from just
    after the last read that saw it held, as a poll would, and has no owner until the next
    poll: its holder may have let go of it since, unseen."""
    def conflict_since(prev):
        seen = state.polled(prev.owner.scope)
        return None if seen is None else max(seen, prev.since_ms) + 1

    # The change came within the event's second: a new owner holds the address from the
    # second's end, an old one lets go at its start, in between it is nobody's, not the wrong
    # owner's. Both after the scope's last read began, so after any HEARTBEAT written. In the
    # second that read began, the read may already show the event's change, or a later one
    # that undid it: what the event changes is nobody's until the next poll.
    floor = state.polled(scope)
    release_ms = event_ms if floor is None else max(event_ms, floor + 1)
    assign_ms = max(_second_end(event_ms), release_ms)
    result = _settle(state, claims, {scope}, lambda _claim: assign_ms, lambda _scope: release_ms,
                     unknown_since=lambda prev: max(release_ms, prev.since_ms + 1),
                     conflict_since=conflict_since, assigning=floor is None or event_ms > floor,
                     dated=dated)
    result.state.event_ms[scope] = event_ms
    return result


def _settle(state: State, claims: list, decided: set, assign_ts, release_ts,
            unknown_since=lambda _prev: None, held_until=lambda _prev, _chosen: None,
            conflict_since=None, read_end=lambda _scope: None, others_failed=False,
            assigning=True, settles=False, dated=None) -> Reconciled:
    """Compares the claims of the `decided` scopes with the holdings; addresses held by other
    scopes are left alone, unless `others_failed` (their reads failed) and a decided scope
    claims one: then it is contested. `unknown_since(holding)`: from when a change of the
    address may have happened (None: changes have exact times); the address has no owner from
    then until its new owner's time. `held_until(holding, claim)`: until when the old holder may
    have held the address a new claim takes over (None: exact times), which the new owner's time
    is after. `conflict_since(holding)`: as unknown_since, for an address now claimed twice.
    `read_end(scope)`: the end of the scope's read now (None: exact times), after which the last
    claimant of a contested address has it. Not `assigning`: a new owner is not known for sure,
    so an address that changes is nobody's (released) instead. Only `settles` (a poll, that read
    every claimant now or found it failed) ends a contest: an event changes an inventory as old
    as its scope's last read, whose other claimants may have let go unseen since. Then the VPC
    claims of the addresses looked at (_settle_vpcs). An address not in `dated` (None: all are)
    is not assigning, and its holder's release is just after the last read of its scope (the
    claims do not say when it changed since)."""
    conflict_since = conflict_since or unknown_since

    def undated_release_ts(scope):
        polled = state.polled(scope)
        return release_ts(scope) if polled is None else polled + 1

    by_ip = {}
    for claim in claims:
        by_ip.setdefault(claim.ip, []).append(claim)
    new = state.copy()
    events, conflicts = [], []
    assigned = {}   # ip -> the ts of its ASSIGN written now
    # ip -> the ts of the release of its holder that a poll's contest found still claiming it:
    # the holder had it all along, so its VPC has it from then (not from this read's end). Not
    # after a failed write: the reads whose writes failed may have shown another owner. Nor from
    # an event: the inventory it changes is as old as the scope's last read, and the holder may
    # have let go since, unseen (a review: its VPC claim named it over a span it had let go).
    contest_released = {}
    held_here = {ip for ip, h in state.holdings.items() if h.owner.scope in decided}
    # An uncertain address held by a scope read now, or by none, is written again, whatever
    # its state says: the changelog may hold a change the state does not.
    uncertain = {ip for ip in state.uncertain
                 if ip not in state.holdings or state.holdings[ip].owner.scope in decided}
    settled_contests = ({ip for ip, scopes in state.contested.items() if scopes <= decided}
                        if settles else set())
    for ip in set(by_ip) | held_here | uncertain | settled_contests:
        prev = state.holdings.get(ip)
        candidates = by_ip.get(ip)
        if prev is not None and prev.owner.scope not in decided:
            if others_failed and candidates:
                since = unknown_since(prev)
                since = prev.since_ms + 1 if since is None else since
                if ip in state.uncertain:   # after a change a failed write may have made
                    since = max(since, state.uncertain[ip] + 1)
                    new.uncertain.pop(ip, None)
                events.append(unassign_event(ip, since))
                del new.holdings[ip]
                new.contested[ip] = frozenset({prev.owner.scope} | {c.owner.scope for c in candidates})
            continue
        after = state.uncertain.get(ip, -1) + 1 if ip in uncertain else None
        new.uncertain.pop(ip, None)
        exact = dated is None or ip in dated
        released_ts = release_ts if exact else undated_release_ts
        contest = state.contested.get(ip)
        if contest is not None and not (settles and contest <= decided):
            # A scope that claimed it is not read now (or only an event's inventory of it, as
            # old as its last read): its claim may stand.
            new.contested[ip] = contest | {c.owner.scope for c in candidates or ()}
            if prev is not None:   # kept by a write that failed with the contest's release
                since = conflict_since(prev)
                since = prev.since_ms + 1 if since is None else since
                events.append(unassign_event(ip, max(since, after or 0)))
                del new.holdings[ip]
            elif after is not None:
                events.append(unassign_event(ip, after))
            continue
        new.contested.pop(ip, None)
        if not candidates:
            if prev is None:   # uncertain, held by nobody: its release said again
                if after is not None:
                    events.append(unassign_event(ip, after))
                continue
            ts = max(released_ts(prev.owner.scope), prev.since_ms + 1, after or 0)
            events.append(unassign_event(ip, ts))
            del new.holdings[ip]
            continue
        if len(candidates) > 1 and len({c.owner for c in candidates}) > 1:
            # Overlapping VPCs: the address is each one's, and flows are logged with the
            # address only: any owner would be the wrong one for the other's flows.
            conflicts.append(ip)
            new.contested[ip] = frozenset({c.owner.scope for c in candidates})
            if prev is not None:
                ts = max(release_ts(prev.owner.scope), prev.since_ms + 1, after or 0)
                since = conflict_since(prev)
                if since is not None:
                    since = max(since, after or 0)   # after a change that may have landed
                events.append(unassign_event(ip, since if since is not None and since < ts
                                             else ts))
                if settles and after is None and any(c.owner == prev.owner for c in candidates):
                    contest_released[ip] = events[-1]["ts"]
                del new.holdings[ip]
            elif after is not None:
                events.append(unassign_event(ip, after))
            continue
        chosen = candidates[0]   # one owner (one interface) claims it
        # The same owner is written again only when its interface's VPC is newly known (a
        # holding resumed from a snapshot of an earlier release): the job learns it from the
        # ASSIGN. Not when no owner is being assigned: the holder stays.
        if prev is not None and prev.owner == chosen.owner and after is None and (
                not (assigning and exact) or chosen.vpc_id in (None, prev.vpc_id)):
            continue
        if not (assigning and exact):
            if prev is not None:
                ts = max(released_ts(prev.owner.scope), prev.since_ms + 1, after or 0)
                events.append(unassign_event(ip, ts))
                del new.holdings[ip]
            elif after is not None:
                events.append(unassign_event(ip, after))
            continue
        ts = assign_ts(chosen)
        if prev is not None:
            ts = max(ts, prev.since_ms + 1)
        elif ip in state.released:
            ts = max(ts, state.released[ip] + 1)
        for scope in (contest or frozenset()) - {chosen.owner.scope}:
            # The other claimants let go by the end of the read that shows it.
            until = read_end(scope)
            if until is not None:
                ts = max(ts, until + 1)
        if after is not None:
            ts = max(ts, after)
        if prev is not None and prev.owner != chosen.owner:
            until = held_until(prev, chosen)
            if until is not None:
                ts = max(ts, until + 1)
            released = unknown_since(prev)
            if released is not None:
                released = max(released, after or 0)
            if released is not None and released < ts:
                events.append(unassign_event(ip, released))
        elif prev is not None and after is not None and after < ts:
            # The same owner again after a write that failed: what it said (a release, another
            # owner) may not have landed, and the owner may have let go in between: nobody's
            # from just after it until now, not the owner's throughout (a review).
            events.append(unassign_event(ip, after))
        events.append(assign_event(ip, ts, chosen.owner, chosen.vpc_id))
        assigned[ip] = ts
        taken = None
        if prev is not None and prev.owner == chosen.owner and after is None:   # its VPC known
            taken = prev.since_ms if prev.taken_ms is None else prev.taken_ms
        new.holdings[ip] = Holding(chosen.owner, ts, chosen.vpc_id, taken)

    def vpc_assign_ts(claim, old):
        """As an ASSIGN of `claim` taking the address over from `old` (a Holding or None); for
        the holder a contest found, at its release (after it in ts order): that is later than
        the previous read of its scope, hence than any HEARTBEAT, and than the holder's ASSIGN."""
        if old is not None and old.owner == claim.owner and claim.ip in contest_released:
            ts = contest_released[claim.ip]
        else:
            ts = assign_ts(claim)
        if old is not None:
            ts = max(ts, old.since_ms + 1)
            until = held_until(old, claim) if old.owner != claim.owner else None
            if until is not None:
                ts = max(ts, until + 1)
        if claim.ip in state.released:   # after the address's last change, a VPC's included
            ts = max(ts, state.released[claim.ip] + 1)
        return ts

    # The addresses whose VPC claims may change: contested ones claimed now, those a decided
    # scope has a VPC claim of, and those with VPC events whose write failed.
    vpc_held_here = {ip for ip, vpcs in state.vpc_holdings.items()
                     if any(h.owner.scope in decided for h in vpcs.values())}
    claimed_here = {ip for ip in (*new.contested, *state.vpc_holdings) if ip in by_ip}
    for ip in claimed_here | vpc_held_here | set(state.vpc_uncertain):
        exact = dated is None or ip in dated
        events.extend(_settle_vpcs(state, new, ip, by_ip.get(ip, ()), decided, assigned.get(ip),
                                   vpc_assign_ts, release_ts if exact else undated_release_ts,
                                   conflict_since, assigning and exact))
    events.sort(key=lambda e: (e["ts"], _RANK[e["type"]], e["ip"], e.get("vpc_id", "")))
    for event in events:
        # A contested address is nobody's, even held still by a write that failed with the
        # contest's release: a VPC_ASSIGN comes after its VPC events (an undo's VPC_UNASSIGN).
        if event["ip"] in new.holdings and event["ip"] not in new.contested:
            new.released.pop(event["ip"], None)
        else:
            new.released[event["ip"]] = max(event["ts"], new.released.get(event["ip"], event["ts"]))
    return Reconciled(events, new, sorted(conflicts))


def _settle_vpcs(state: State, new: State, ip: str, claims, decided: set, assigned_ms,
                 vpc_assign_ts, release_ts, conflict_since, assigning) -> list:
    """The VPC events of `ip` once its own are settled (`new`), its VPC claims in `new`.
    Contested, each VPC the decided scopes' `claims` name has the one owner they give it there,
    dated by `vpc_assign_ts(claim, old holding)`; one claimed by two owners (a decided scope's
    and another's kept) is nobody's. A VPC claim of a scope not decided stays. Not contested
    (any more), it has none: the one of the owner `assigned_ms` gives the address goes then, the
    others when released. A VPC with events whose writes failed is nobody's from just after each
    of them (it may have landed and be another owner's) until its owner's time, after them all;
    if a scope not decided has its claim, once that scope is (the claim it had may be gone, as a
    read whose write failed said, and is released from the scope's last read). Not
    `assigning`: a VPC whose owner changes is nobody's."""
    held = state.vpc_holdings.get(ip, {})
    contested = ip in new.contested
    owners = {}   # vpc id -> {owner: claim}
    for claim in claims:
        if claim.vpc_id is not None and contested:
            owners.setdefault(claim.vpc_id, {})[claim.owner] = claim
    owner = new.holdings[ip].owner if assigned_ms is not None else None
    landed = state.vpc_uncertain.get(ip, {})   # vpc id -> the ts of its failed events
    events, kept, deferred = [], {}, {}

    def release_at(h, ts):
        """A VPC claim's release at `ts`, after the claim began."""
        return max(ts, h.since_ms + 1)

    for vpc in sorted(set(held) | set(owners) | set(landed)):
        old, claimed = held.get(vpc), owners.get(vpc, {})
        after = max(landed[vpc]) + 1 if vpc in landed else None
        gone, assign = None, None   # its VPC_UNASSIGN's ts; its VPC_ASSIGN's (ts, owner)
        other_scope = old is not None and old.owner.scope not in decided
        if other_scope and not claimed:   # its scope not read now: kept as its owner is
            kept[vpc] = old
            if after is not None:
                deferred[vpc] = landed[vpc]
            continue
        # Two owners claim it in that VPC (two read now, or one read now and another's kept):
        # nobody's there.
        doubled = len(claimed) > 1 or other_scope
        claim = next(iter(claimed.values())) if len(claimed) == 1 and not doubled else None
        same = claim is not None and old is not None and old.owner == claim.owner
        if same and after is None:
            kept[vpc] = old
            continue
        if claim is not None and (assigning or same):
            assign = (max(vpc_assign_ts(claim, old or state.holdings.get(ip)), after or 0),
                      claim.owner)
            if old is not None:   # another owner's, or its own that a failed write follows
                gone = release_at(old, release_ts(old.owner.scope))
        elif old is not None and doubled:
            since = conflict_since(old)
            gone = release_at(old, since if since is not None else release_ts(old.owner.scope))
        elif old is not None and old.owner == owner:
            gone = release_at(old, assigned_ms)   # the address's own owner from then
        elif old is not None:
            gone = release_at(old, release_ts(old.owner.scope))
        if gone is not None and (assign is None or gone < assign[0]):
            events.append(vpc_unassign_event(ip, vpc, gone))
        # A VPC event whose write failed may have landed, of an owner since gone: nobody's from
        # just after it (a release at or after that time does it), until the owner's time.
        for ts in sorted({ts + 1 for ts in landed.get(vpc, ())}):
            if (gone is None or gone < ts) and (assign is None or ts < assign[0]):
                events.append(vpc_unassign_event(ip, vpc, ts))
        if assign is not None:
            events.append(vpc_assign_event(ip, vpc, *assign))
            kept[vpc] = Holding(assign[1], assign[0])
    if kept:
        new.vpc_holdings[ip] = kept
    else:
        new.vpc_holdings.pop(ip, None)
    if deferred:
        new.vpc_uncertain[ip] = deferred
    else:
        new.vpc_uncertain.pop(ip, None)
    return events


def snapshot_events(state: State) -> list:
    """Every current owner as an ASSIGN at the time it took the address, and every owner within a
    VPC as a VPC_ASSIGN, by address (the job starts from them, as does a `--resume`)."""
    events = [assign_event(ip, h.since_ms if h.taken_ms is None else h.taken_ms, h.owner,
                           h.vpc_id) for ip, h in state.holdings.items()]
    events += [vpc_assign_event(ip, vpc, h.since_ms, h.owner)
               for ip, vpcs in state.vpc_holdings.items() for vpc, h in vpcs.items()]
    return sorted(events, key=lambda e: (e["ip"], e.get("vpc_id", "")))


# The version of state_clocks' shape; a snapshot's clocks of another are not read. 2 adds
# `written`: an earlier release would resume an owner written again at the time it took the
# address, and date the address's next change before that ASSIGN (then the owner's again).
CLOCKS_VERSION = 2


def state_clocks(state: State) -> dict:
    """What a snapshot's owners leave out of a publisher's state, as JSON: each scope's last read
    (start, end) and last applied event, the last HEARTBEAT, and the addresses whose last write
    failed (and the times of their VPC events whose writes failed, by VPC), released ones and
    contested ones. With them a `--resume` goes on as the run that took the snapshot would have:
    a change found later is dated after that scope's last read, not after the snapshot file's
    time (a review: the time of a file copied two hours later kept an old owner on an address
    for those two hours), and an address whose write failed is written again (its ASSIGN may be
    in the stream). The owners within VPCs are in the snapshot (VPC_ASSIGN); its owners are
    dated when they took their addresses, and those written again since (their VPC newly
    known) are in `written` with the time of that ASSIGN, which the next change comes after."""
    return {"version": CLOCKS_VERSION,
            "polled_ms": {str(s): ms for s, ms in state.polled_ms.items()},
            "seen_ms": {str(s): ms for s, ms in state.seen_ms.items()},
            "event_ms": {str(s): ms for s, ms in state.event_ms.items()},
            "heartbeat_ms": state.heartbeat_ms, "uncertain": dict(state.uncertain),
            "released": dict(state.released),
            "written": {ip: h.since_ms for ip, h in state.holdings.items()
                        if h.taken_ms is not None},
            "contested": {ip: sorted(map(str, scopes)) for ip, scopes in state.contested.items()},
            "vpc_uncertain": {ip: {vpc: sorted(times) for vpc, times in vpcs.items()}
                              for ip, vpcs in state.vpc_uncertain.items()}}


def _scope(text: str) -> Scope:
    account, region = text.split("/")
    return Scope(account, region)


class ClocksError(ValueError):
    """Clocks beside a snapshot (state_clocks) that this release cannot read."""


def state_from_snapshot(events: list, taken_ms: int = None, clocks: dict = None) -> State:
    """The holdings a snapshot describes (ASSIGN events), taken at `taken_ms` (when known: every
    change found after is stamped later, as a HEARTBEAT written before it may promise), and the
    rest of the state from its `clocks` (state_clocks), if any: then a scope's last read dates
    its changes, and the snapshot's time only those of a scope it has none of. An address with
    VPC claims (VPC_ASSIGN) the clocks do not give as contested is, among the scopes of its VPC
    owners. Raises ClocksError for clocks of another version or shape."""
    state = State(resumed_ms=taken_ms)
    # An owner from an event is dated up to EVENTS_AHEAD_MS after the clock, at its second's
    # end. One later (a hand-edited 9999) dated the address's every later change after it, all
    # of them refused by the job.
    latest = None if taken_ms is None else taken_ms + EVENTS_AHEAD_MS + 1000
    written = {}
    if clocks is not None:
        written = _read_clocks(state, clocks)
        if latest is not None:
            _check_clocks_before(state, latest, taken_ms, written)
    owner_fields = {f.name for f in dataclasses.fields(Owner)}
    for event in events:
        if event.get("type") not in (ASSIGN, VPC_ASSIGN):
            raise ValueError(f"a snapshot holds only ASSIGN and VPC_ASSIGN events, found "
                             f"{quoted(event.get('type'))}")
        owner = Owner(**{k: _text(k, v) for k, v in event.items() if k in owner_fields})
        holding, ip = Holding(owner, _ms(event["ts"])), _address(event["ip"])
        if latest is not None and holding.since_ms > latest:
            raise ValueError(f"ts {holding.since_ms} ({utc_text(holding.since_ms)}) is after the "
                             f"snapshot was written, {utc_text(taken_ms)}")
        if event["type"] == ASSIGN:
            # A snapshot of an earlier release names no VPC: the next poll writes the owner
            # again with it (reconcile_poll).
            vpc = event.get(INTERFACE_VPC_ID)
            vpc = None if vpc is None else _vpc_id(vpc, INTERFACE_VPC_ID)
            again = written.get(ip, holding.since_ms)
            state.holdings[ip] = Holding(owner, max(again, holding.since_ms), vpc,
                                         holding.since_ms if again > holding.since_ms else None)
        else:
            vpc = _vpc_id(event["vpc_id"])
            state.vpc_holdings[ip] = {**state.vpc_holdings.get(ip, {}), vpc: holding}
    # An address with VPC claims is contested (they are held only while it is): without clocks
    # (or clocks that do not name it), among its VPC owners' scopes, which are then all read
    # before it has an owner (a resumed contest lost made the claim of a scope whose first read
    # failed go, and gave the address to the other claimant). A claimant without a VPC claim
    # here (VPC not known, its VPC claimed twice, released while another's read failed) is in
    # no event of the snapshot: its scope is only in the clocks, and is lost without them.
    for ip, vpcs in state.vpc_holdings.items():
        if ip not in state.contested:
            state.contested[ip] = frozenset(h.owner.scope for h in vpcs.values())
    return state


def _check_clocks_before(state: State, latest: int, taken_ms: int, written: dict) -> None:
    """Clocks dated after `latest` are none this publisher wrote (as a snapshot's owners: a
    hand-edited 9999 held back every HEARTBEAT, made every event of its scope stale, or dated
    an address's next change there, which the job refuses)."""
    clocks = {"heartbeat_ms": [] if state.heartbeat_ms is None else [state.heartbeat_ms],
              **{name: list(getattr(state, name).values())
                 for name in ("polled_ms", "seen_ms", "event_ms", "uncertain", "released")},
              "written": list(written.values()),
              "vpc_uncertain": [ms for vpcs in state.vpc_uncertain.values()
                                for times in vpcs.values() for ms in times]}
    for name, times in clocks.items():
        if times and max(times) > latest:
            raise ClocksError(f"{name} {max(times)} ({utc_text(max(times))}) is after the "
                              f"snapshot was written, {utc_text(taken_ms)}")


def utc_text(ms: int) -> str:
    """Epoch ms as an ISO 8601 UTC time, for messages."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def _text(field: str, value) -> str:
    """An owner value of a snapshot, as this publisher writes them: text (a hand-edited `true`
    was held as the owner "True", which the job refuses)."""
    if type(value) is not str:
        raise ValueError(f"{field} {quoted(value)} is not text")
    return value


# AWS's VPC ids, as the job takes them (job/ownership.py _is_vpc_id).
_is_vpc_id = re.compile(r"vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?").fullmatch


def _vpc_id(value, field: str = "vpc_id") -> str:
    """A snapshot's or its clocks' vpc_id (or an ASSIGN's `field`) as AWS writes it: the job
    refuses others (bad_vpc_id), and a claim of one would never be released in the changelog."""
    if type(value) is not str or not _is_vpc_id(value):
        raise ValueError(f"{field} {quoted(value)} is not a VPC id as AWS writes them (vpc- and 8 "
                         f"or 17 lowercase hex digits)")
    return value


def _address(value) -> str:
    """A snapshot's address as the publisher writes it (10 failed the first poll's sort)."""
    try:
        written = type(value) is str and str(ipaddress.ip_address(value)) == value
    except ValueError:
        written = False
    if not written:
        raise ValueError(f"ip {quoted(value)} is not an address as written (ipaddress's form)")
    return value


def _ms(value) -> int:
    """A time (epoch ms) as written: an integer of Java's long (int() took "12", 1.9 as 1,
    and failed on 1e400 with an error nothing caught; 10**30 would hold HEARTBEATs back for
    good)."""
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError(f"{quoted(value)} is not an integer time")
    return value


def _read_clocks(state: State, clocks: dict) -> dict:
    """Fills `state` from `clocks`; returns their `written` (ip -> ms)."""
    version = clocks.get("version")
    if type(version) is not int or version not in (1, CLOCKS_VERSION):
        raise ClocksError(f"clocks of version {version!r}, this release reads 1 to "
                          f"{CLOCKS_VERSION}")
    try:
        state.polled_ms = {_scope(s): _ms(ms) for s, ms in clocks["polled_ms"].items()}
        state.seen_ms = {_scope(s): _ms(ms) for s, ms in clocks["seen_ms"].items()}
        state.event_ms = {_scope(s): _ms(ms) for s, ms in clocks["event_ms"].items()}
        heartbeat = clocks["heartbeat_ms"]
        state.heartbeat_ms = None if heartbeat is None else _ms(heartbeat)
        state.uncertain = {ip: _ms(ts) for ip, ts in clocks["uncertain"].items()}
        state.released = {ip: _ms(ts) for ip, ts in clocks["released"].items()}
        state.contested = {ip: frozenset(map(_scope, scopes))
                           for ip, scopes in clocks["contested"].items()}
        # Clocks from before VPC claims have none.
        state.vpc_uncertain = {ip: {_vpc_id(vpc): frozenset(map(_ms, times))
                                    for vpc, times in vpcs.items()}
                               for ip, vpcs in clocks.get("vpc_uncertain", {}).items()}
        if version == 1:   # no owner written again with its VPC
            return {}
        return {_address(ip): _ms(ms) for ip, ms in clocks["written"].items()}
    except KeyError as err:
        raise ClocksError(f"clocks without {err}") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise ClocksError(f"clocks not as this release writes them ({err})") from None
