"""The store on MongoDB through PyMongo's async API, in the original's ``endpoints`` database.

``sites`` (keyed by ``_id`` = domain, with the original's ``domain`` field beside it),
``history`` (one document per check) and ``incidents`` hold one document per thing. What the
check cycle reads and rewrites all the time is kept in few documents instead, each for a
batch of sites: ``schedule`` (when a group of sites is due), ``leases`` (which claim holds
which group) and ``status`` with ``status_results`` (the latest results of one write,
compressed). ``meta`` holds a version of ``sites``, so that each process reads ``sites``
again only when a sync changed it.

That layout is for FerretDB 1.24 on SQLite as much as for MongoDB, because FerretDB makes
per-site documents slow: every filter but a single ``_id`` makes it read and decode every
document of the collection (20-60 µs each on a 2-core test machine, 200-400 µs for a status
with its DNS and HTTP detail), so replacing 1,000 of 5,000 per-site documents (a
``delete_many`` by ``$in``; an update is a SQLite transaction of its own) costs a scan of all
5,000, and a check cycle made some ten such scans per batch: about 4 ms of FerretDB CPU per
check. Inserting is cheap (one transaction per ``insert_many``), and so is reading a
collection of a few dozen documents. So the cycle only inserts per-check documents
(history), and everything it reads or replaces lives in collections of about one document
per batch, with lists of domains as one string (an array of strings costs FerretDB six times
as much to decode). FerretDB also holds one of its 100 SQLite connections per statement
until an update command ends, so a ``bulk_write`` of about 100 updates never returns: the
updates that remain (sync, incidents) go in commands of at most ``_BULK``.

Only the portable subset of MongoDB is used — single-document writes, unordered bulk
writes, plain indexes; no multi-document transactions, time-series collections, TTL indexes
or ``$lookup`` — so that MongoDB 6-8, FerretDB, Amazon DocumentDB and Azure Cosmos DB for
MongoDB all work. Every write is idempotent, so a retried batch never doubles anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic_core
from bson import Binary
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.uri_parser import parse_uri

from rechecker.models import CheckResult, HistoryPoint, Incident, Site, utcnow
from rechecker.redact import redact_text, redact_url
from rechecker.store.base import Lease, Store, StoreError

DEFAULT_DATABASE = "endpoints"
DUPLICATE_KEY = 11000
_CHUNK = 1000
#: Statements per update command; FerretDB 1.24 deadlocks on about 100 at once (see above).
_BULK = 20
#: Sites per schedule group made for new sites: small enough that workers claiming at the
#: same time find different groups, large enough that ``schedule`` stays a few documents.
_GROUP = 250
#: Rounds of one claim: a round whose chosen groups other workers won reads again, so that a
#: worker never comes back empty-handed while due sites are free.
_CLAIM_ROUNDS = 4
#: Seconds before the second round of a claim, doubling for each round after it.
_RETRY_S = 0.01
#: Status results older than this without their status document are left over by a crash.
_ORPHAN_S = 3600.0

#: History documents keep these fields readable; DNS and HTTP detail go in ``detail``.
_SUMMARY_FIELDS = (
    "domain",
    "url",
    "state",
    "verdict",
    "status_code",
    "error_class",
    "error_message",
    "latency_ms",
)
_RESULT_FIELDS = (
    *_SUMMARY_FIELDS,
    "timestamp",
    "dns",
    "http",
    "state_since",
    "consecutive_failures",
    "consecutive_successes",
    "incident_id",
)
_INCIDENT_FIELDS = ("id", "domain", "started_at", "ended_at", "cause", "message")
#: Schedule, lease and status documents of this layout, each for a batch of sites; those of
#: the layout before (one per site) have no ``domains`` and are converted at open.
_BATCHES: dict[str, Any] = {"domains": {"$exists": True}}


def _history_document(result: CheckResult) -> dict[str, Any]:
    """A check as history keeps it, under an id made of its domain and time.

    DNS and HTTP detail are one JSON string, as in the SQL store's ``detail`` column: as
    nested documents they made each insert cost FerretDB three times as much.
    """
    document: dict[str, Any] = {"_id": f"{result.domain}@{result.timestamp.isoformat()}"}
    document.update(result.model_dump(mode="json", include=set(_SUMMARY_FIELDS)))
    document["timestamp"] = result.timestamp  # a BSON date, so ranges and sorting work
    document["detail"] = result.model_dump_json(include={"dns", "http"})
    return document


def _result(document: dict[str, Any]) -> CheckResult:
    """A history document, or a status document of the layout before status batches."""
    fields = {key: document[key] for key in _RESULT_FIELDS if document.get(key) is not None}
    detail = document.get("detail")
    if isinstance(detail, str):
        fields.update(pydantic_core.from_json(detail))
    return CheckResult.model_validate(fields)


def _site(document: dict[str, Any]) -> Site:
    return Site.model_validate(
        {key: document.get(key) for key in ("domain", "url", "inventory_id", "added_at")}
    )


def _joined(domains: Iterable[str]) -> str:
    """A list of domains as one document field: one string, a domain a line. FerretDB
    decodes an array of 5,000 strings six times slower than one string of them, and the
    collections of batches hold every monitored domain."""
    return "\n".join(domains)


def _split(domains: str) -> list[str]:
    return domains.split("\n") if domains else []


def _lease(document: dict[str, Any]) -> dict[str, Any]:
    """A lease document with its domains as a list."""
    return {**document, "domains": _split(document["domains"])}


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _content_id(domains: Iterable[str]) -> str:
    """An id that two processes doing the same migration give the same document."""
    return hashlib.sha256("\n".join(domains).encode()).hexdigest()[:32]


def _status_id(at_ns: int | None = None, suffix: str | None = None) -> str:
    """A status document id that sorts by time of writing (then at random): the latest
    document naming a domain holds its status."""
    at = time.time_ns() if at_ns is None else at_ns
    return f"{at:016x}{uuid.uuid4().hex[:8] if suffix is None else suffix[:8]}"


async def _insert(
    collection: AsyncCollection[dict[str, Any]], documents: Sequence[dict[str, Any]]
) -> list[Any]:
    """Insert, skipping documents whose ``_id`` exists; returns the ``_id`` of those inserted.

    A duplicate means another worker or replica was first, which is how claims are decided.
    """
    inserted: list[Any] = []
    for chunk in _chunks(documents):
        try:
            await collection.insert_many(list(chunk), ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            lost = {error["index"] for error in errors}
            inserted.extend(doc["_id"] for i, doc in enumerate(chunk) if i not in lost)
        else:
            inserted.extend(doc["_id"] for doc in chunk)
    return inserted


async def _bulk_write(
    collection: AsyncCollection[dict[str, Any]], operations: Sequence[Any]
) -> None:
    """Send keyed updates in commands of ``_BULK``, so FerretDB cannot run out of connections."""
    for chunk in _chunks(operations, _BULK):
        await collection.bulk_write(list(chunk), ordered=False)


@dataclass(frozen=True, slots=True)
class _Group:
    """A ``schedule`` document: sites due at one time. A group made from others has a
    higher ``gen`` than they, so that a site found in two groups belongs to the newer one."""

    id: str
    gen: int
    due: datetime
    domains: list[str]

    @classmethod
    def read(cls, document: dict[str, Any]) -> _Group:
        due = document["next_due_at"]
        return cls(document["_id"], document["gen"], due, _split(document["domains"]))


@dataclass(slots=True)
class _Work:
    """``schedule`` and ``leases`` as one worker read them."""

    groups: dict[str, _Group]
    #: Lease documents by the id of their group.
    leases: dict[str, dict[str, Any]]
    #: The group that schedules each domain: where a domain is in more than one group (a
    #: rewrite cut off half-way, two syncs adding it at once), the latest generation.
    owner: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        rank: dict[str, tuple[int, str]] = {}
        for group in self.groups.values():
            for domain in group.domains:
                if (group.gen, group.id) > rank.get(domain, (-1, "")):
                    rank[domain] = (group.gen, group.id)
                    self.owner[domain] = group.id

    def owned(self, group: _Group, monitored: dict[str, Site]) -> list[str]:
        """The monitored domains this group schedules, in order."""
        return sorted(d for d in group.domains if self.owner[d] == group.id and d in monitored)

    def live(self, now: datetime) -> dict[str, dict[str, Any]]:
        return {gid: lease for gid, lease in self.leases.items() if lease["expires_at"] >= now}


class MongoStore(Store):
    def __init__(self, url: str, *, timeout_ms: int = 5000) -> None:
        self._url = url
        self._database_name = parse_uri(url).get("database") or DEFAULT_DATABASE
        self._timeout_ms = timeout_ms
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        #: ``sites`` as last read, and the version of it that was: see :meth:`_sites`.
        self._sites_read: dict[str, Site] | None = None
        self._sites_version: str | None = None

    def __repr__(self) -> str:
        return f"MongoStore({redact_url(self._url)!r})"

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"{what} at {redact_url(self._url)}: {redact_text(str(exc))}")

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        if self._client is None:
            raise StoreError("store is not open")
        return self._client[self._database_name]

    async def open(self) -> None:
        if self._client is not None:
            return
        self._client = AsyncMongoClient(
            self._url,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=self._timeout_ms,
            connectTimeoutMS=self._timeout_ms,
            appname="rechecker",
        )
        try:
            db = self.db
            await db.history.create_index(
                [("domain", ASCENDING), ("timestamp", DESCENDING)], name="domain_timestamp"
            )
            await db.history.create_index([("timestamp", ASCENDING)], name="timestamp")
            await db.incidents.create_index(
                [("domain", ASCENDING), ("started_at", DESCENDING)], name="domain_started"
            )
            await db.incidents.create_index([("started_at", DESCENDING)], name="started")
            await self._upgrade()
        except PyMongoError as exc:
            await self.close()
            raise self._error("cannot open the store", exc) from exc

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ping(self) -> None:
        try:
            await self.db.command("ping")
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc

    async def _upgrade(self) -> None:
        """Bring data of earlier layouts (one schedule, lease and status document per site;
        due times in ``sites``) into this one, and schedule any site without a schedule (a
        sync cut off between adding a site and scheduling it). Several processes may do this
        at once: the documents they make have the same ids."""
        db = self.db
        version = await self._read_sites_version()
        documents = [doc async for doc in db.sites.find({}, {"_id": 0})]
        monitored = self._remember_sites(version, documents)
        # Leases of one site each were held by workers of the earlier layout: let them go.
        await db.leases.delete_many({"domains": {"$exists": False}})
        old_due = {
            doc["_id"]: doc.get("next_due_at")
            async for doc in db.schedule.find({"domains": {"$exists": False}})
        }
        listed = {
            domain
            async for doc in db.schedule.find(_BATCHES, {"domains": 1})
            for domain in _split(doc["domains"])
        }
        now = utcnow()
        due = {
            doc["domain"]: old_due.get(doc["domain"])
            or doc.get("next_due_at")
            or doc.get("added_at")
            for doc in documents
            if doc["domain"] not in listed
        }
        await self._schedule(due, now=now, content_ids=True)
        if old_due:
            await db.schedule.delete_many({"domains": {"$exists": False}})
        old_status = [doc async for doc in db.status.find({"domains": {"$exists": False}})]
        latest = [_result(doc) for doc in old_status if doc.get("domain") in monitored]
        for chunk in _chunks(sorted(latest, key=lambda result: result.domain)):
            newest = max(result.timestamp for result in chunk)
            content = _content_id(result.domain for result in chunk)
            await self._write_status(chunk, _status_id(int(newest.timestamp() * 1e9), content))
        if old_status:
            await db.status.delete_many({"_id": {"$in": [doc["_id"] for doc in old_status]}})
        # Results whose status document a crash left unwritten or undeleted; recent ones may
        # be a write in progress.
        index, _ = await self._status_index()
        before = _status_id(time.time_ns() - int(_ORPHAN_S * 1e9), "")
        orphans = [
            doc["_id"]
            async for doc in db.status_results.find({}, {"_id": 1})
            if doc["_id"] not in index and doc["_id"] < before
        ]
        for status_id in orphans:
            await db.status_results.delete_one({"_id": status_id})

    # --- sites -----------------------------------------------------------------------------
    async def _read_sites_version(self) -> str | None:
        document = await self.db.meta.find_one({"_id": "sites"})
        return None if document is None else str(document.get("version"))

    def _remember_sites(
        self, version: str | None, documents: list[dict[str, Any]]
    ) -> dict[str, Site]:
        self._sites_read = {doc["domain"]: _site(doc) for doc in documents}
        self._sites_version = version
        return self._sites_read

    async def _sites(self) -> dict[str, Site]:
        """Every monitored site by domain, read again only when ``sites`` changed.

        The check cycle needs the sites it claims and which domains are still monitored;
        reading ``sites`` for that each time would be the kind of scan this layout avoids.
        Every change to ``sites`` made here writes a new version into ``meta``, and one
        look at that tells whether the copy held is current.
        """
        version = await self._read_sites_version()
        if self._sites_read is not None and version == self._sites_version:
            return self._sites_read
        documents = [doc async for doc in self.db.sites.find({}, {"_id": 0})]
        return self._remember_sites(version, documents)

    async def _sites_changed(self) -> None:
        """Tell every process holding a copy of ``sites`` to read it again."""
        change = {"$set": {"version": uuid.uuid4().hex}}
        try:
            await self.db.meta.update_one({"_id": "sites"}, change, upsert=True)
        except DuplicateKeyError:  # another process created it at the same moment
            await self.db.meta.update_one({"_id": "sites"}, change)

    async def list_sites(self) -> list[Site]:
        try:
            cursor = self.db.sites.find({}, {"_id": 0}).sort("domain", ASCENDING)
            return [_site(doc) async for doc in cursor]
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc

    async def get_site(self, domain: str) -> Site | None:
        try:
            document = await self.db.sites.find_one({"_id": domain}, {"_id": 0})
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc
        return None if document is None else _site(document)

    async def _existing(self, domains: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(domains):
            cursor = self.db.sites.find({"_id": {"$in": list(chunk)}}, {"_id": 0})
            found.update({doc["domain"]: doc async for doc in cursor})
        return found

    async def add_sites(self, sites: Sequence[Site]) -> list[str]:
        unique = list({site.domain: site for site in sites}.values())
        try:
            existing = await self._existing([site.domain for site in unique])
            new = [site for site in unique if site.domain not in existing]
            changed = [
                UpdateOne(
                    {"_id": site.domain},
                    {"$set": {"url": site.url, "inventory_id": site.inventory_id}},
                )
                for site in unique
                if site.domain in existing
                and (existing[site.domain].get("url"), existing[site.domain].get("inventory_id"))
                != (site.url, site.inventory_id)
            ]
            await _bulk_write(self.db.sites, changed)
            inserted = set(
                await _insert(
                    self.db.sites, [{"_id": site.domain, **site.model_dump()} for site in new]
                )
            )
            if inserted or changed:
                await self._sites_changed()
            # Only the call whose insert made the site schedules it, so no two groups of
            # new sites hold the same one; after the new version, so that whoever sees the
            # group knows the site (see claim_due).
            await self._schedule(
                {site.domain: site.added_at for site in new if site.domain in inserted},
                now=utcnow(),
            )
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return [site.domain for site in new if site.domain in inserted]

    async def remove_sites(self, domains: Sequence[str]) -> list[str]:
        try:
            present = sorted(await self._existing(list(dict.fromkeys(domains))))
            if not present:
                return []
            for chunk in _chunks(present):
                await self.db.sites.delete_many({"_id": {"$in": list(chunk)}})
            await self._sites_changed()
            await self._forget_status(set(present))
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return present

    # --- shared work ------------------------------------------------------------------------
    # Three small collections, written only by inserts and deletes by _id:
    #   schedule   {_id, gen, next_due_at, domains}: a group of sites due at one time.
    #   leases     {_id: group id, owner, token, expires_at, domains}: the group's sites that
    #              one claim holds.
    #   takeovers  {_id: "group token"}: for a moment, who replaces an expired lease.
    # Inserting a lease is the claim: the unique _id lets exactly one of two racing workers
    # win a group. A conditional update is not enough, as FerretDB does not re-check update
    # filters atomically per document. Groups are never changed: completing inserts a group
    # of the completed sites (due next time, one generation on) before deleting the old one
    # with its lease, and a claim of part of a group inserts the rest as a group of its own,
    # so a crash leaves a site in two groups at worst, where the newer generation counts.
    async def _work(self) -> _Work:
        groups = {doc["_id"]: _Group.read(doc) async for doc in self.db.schedule.find(_BATCHES)}
        leases = {doc["_id"]: _lease(doc) async for doc in self.db.leases.find(_BATCHES)}
        return _Work(groups, leases)

    async def _schedule(
        self, due: dict[str, datetime | None], *, now: datetime, content_ids: bool = False
    ) -> None:
        """Put these domains into new groups of at most ``_GROUP``: those due by now
        together, the others by due time, so that none becomes due early.

        ``content_ids``: name each group after its sites, so that processes doing the same
        at once make one group, not two.
        """
        by_time: dict[datetime, list[str]] = defaultdict(list)
        for domain in sorted(due):
            by_time[max(due[domain] or now, now)].append(domain)
        groups = [
            {
                "_id": _content_id(chunk) if content_ids else uuid.uuid4().hex,
                "gen": 0,
                "next_due_at": min(due[domain] or now for domain in chunk),
                "domains": _joined(chunk),
            }
            for _, domains in sorted(by_time.items())
            for chunk in _chunks(domains, _GROUP)
        ]
        await _insert(self.db.schedule, groups)

    async def claim_due(self, owner: str, now: datetime, lease_s: float, limit: int) -> Lease:
        token = uuid.uuid4().hex
        expires = now + timedelta(seconds=lease_s)
        held: dict[str, list[str]] = {}
        picked: dict[str, Site] = {}
        try:
            for round_ in range(_CLAIM_ROUNDS):
                if round_:
                    # Another worker won a group this claim chose, or holds one whose rest
                    # it is about to put into a group of its own: give it a moment.
                    await asyncio.sleep(_RETRY_S * 2 ** (round_ - 1))
                work = await self._work()
                # Read after the groups: a sync adds sites before scheduling them, so every
                # site of a group seen here is in this copy.
                sites = await self._sites()
                if round_ == 0:
                    await self._collect_garbage(work, sites, now)
                plan, splitting = self._plan(work, sites, now, limit - len(picked))
                won = await self._acquire(work, plan, owner, token, expires, now)
                # Only the holder of a group writes what comes of it: here, the part of it
                # left to others, as a group of its own.
                rests = [
                    {
                        "_id": uuid.uuid4().hex,
                        "gen": group.gen + 1,
                        "next_due_at": group.due,
                        "domains": _joined(rest),
                    }
                    for group, _, rest in plan
                    if rest and group.id in won
                ]
                await _insert(self.db.schedule, rests)
                for group, mine, _ in plan:
                    if group.id in won:
                        held[group.id] = mine
                        picked.update((domain, sites[domain]) for domain in mine)
                if len(picked) >= limit or (len(won) == len(plan) and not splitting):
                    break
            kept = await self._still_ours(token, held, now) if held else []
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return Lease(token=token, sites=[picked[domain] for domain in sorted(kept)])

    @staticmethod
    def _plan(
        work: _Work, sites: dict[str, Site], now: datetime, room: int
    ) -> tuple[list[tuple[_Group, list[str], list[str]]], bool]:
        """The due groups to claim, oldest first, each with the domains to take and those
        left for others (a group larger than the room left is split); and whether a due
        group is being split by its holder, whose rest will be free in a moment."""
        live = work.live(now)
        leased = {domain for lease in live.values() for domain in lease["domains"]}
        plan: list[tuple[_Group, list[str], list[str]]] = []
        splitting = False
        for group in sorted(work.groups.values(), key=lambda g: (g.due, g.id)):
            if room <= 0 or group.due > now:
                break
            take = [domain for domain in work.owned(group, sites) if domain not in leased]
            if group.id in live:
                splitting = splitting or bool(take)
            elif take:
                plan.append((group, take[:room], take[room:]))
                room -= len(take[:room])
        return plan, splitting

    async def _acquire(
        self,
        work: _Work,
        plan: list[tuple[_Group, list[str], list[str]]],
        owner: str,
        token: str,
        expires: datetime,
        now: datetime,
    ) -> set[str]:
        """Insert the plan's leases; returns the ids of the groups won."""
        if not plan:
            return set()
        expired = {g.id: work.leases[g.id]["token"] for g, _, _ in plan if g.id in work.leases}
        taken = await self._take_over(expired, now)
        leases = [
            {
                "_id": g.id,
                "owner": owner,
                "token": token,
                "expires_at": expires,
                "domains": _joined(mine),
            }
            for g, mine, _ in plan
            if g.id not in expired or g.id in taken
        ]
        won = set(await _insert(self.db.leases, leases))
        if taken:
            await self.db.takeovers.delete_many({"_id": {"$in": list(taken.values())}})
        return won

    async def _take_over(self, expired: dict[str, str], now: datetime) -> dict[str, str]:
        """Delete the expired leases this claim may replace; returns their takeover ids.

        Two workers may both see a lease expired, and FerretDB deletes what its filter matched
        a moment before, so one worker's delete could remove the lease the other has just
        inserted. Inserting a takeover document named after the expired lease first lets
        exactly one of them delete it.
        """
        if not expired:
            return {}
        ids = {group: f"{group} {token}" for group, token in expired.items()}
        won = set(await _insert(self.db.takeovers, [{"_id": i} for i in ids.values()]))
        taken = {group: i for group, i in ids.items() if i in won}
        if taken:
            await self.db.leases.delete_many(
                {
                    "_id": {"$in": sorted(taken)},
                    "token": {"$in": sorted({expired[group] for group in taken})},
                    "expires_at": {"$lt": now},
                }
            )
        return taken

    async def _still_ours(self, token: str, held: dict[str, list[str]], now: datetime) -> list[str]:
        """The domains of this claim that no other claim holds, read after inserting.

        A group is gone if its holder completed it between our reading and our lease; a
        domain is held twice if a sync scheduled it twice and two workers claimed both copies
        at once, and then the later of them (which sees the other's lease) gives it up.
        """
        work = await self._work()
        gone = [
            gid
            for gid in held
            if gid not in work.groups or work.leases.get(gid, {}).get("token") != token
        ]
        if gone:
            await self.db.leases.delete_many({"_id": {"$in": gone}, "token": token})
        others = {
            domain
            for lease in work.live(now).values()
            if lease["token"] != token
            for domain in lease["domains"]
        }
        return [
            domain
            for gid, domains in held.items()
            if gid not in gone
            for domain in domains
            if domain not in others
        ]

    async def _collect_garbage(self, work: _Work, sites: dict[str, Site], now: datetime) -> None:
        """Delete groups that schedule no monitored site (their sites were removed, or are
        in newer groups) and expired leases of groups that are gone."""
        live = work.live(now)
        empty = [
            g.id for g in work.groups.values() if g.id not in live and not work.owned(g, sites)
        ]
        if empty:
            await self.db.schedule.delete_many({"_id": {"$in": empty}})
        stray = [gid for gid in work.leases if gid not in work.groups and gid not in live]
        if stray:
            await self.db.leases.delete_many({"_id": {"$in": stray}, "expires_at": {"$lt": now}})

    async def complete_lease(
        self, token: str, domains: Sequence[str], next_due_at: datetime
    ) -> int:
        try:
            ours = [_lease(doc) async for doc in self.db.leases.find({"token": token, **_BATCHES})]
            claimed = {domain for lease in ours for domain in lease["domains"]}
            held = sorted(set(domains) & claimed)
            if not held:
                return 0
            work = await self._work()
            sites = await self._sites()
            again = [domain for domain in held if domain in sites]
            if again:
                # A generation above every group naming these sites: the new group counts.
                listed = set(again)
                gen = 1 + max(
                    (g.gen for g in work.groups.values() if not listed.isdisjoint(g.domains)),
                    default=0,
                )
                group = {"_id": uuid.uuid4().hex, "gen": gen, "next_due_at": next_due_at}
                await self.db.schedule.insert_one({**group, "domains": _joined(again)})
            # A lease ends, with its group, once every domain it holds is completed: now, or
            # before (those are in a newer group now).
            done = set(held)
            finished = [
                lease["_id"]
                for lease in ours
                if not any(
                    work.owner.get(domain) == lease["_id"] and domain not in done
                    for domain in lease["domains"]
                )
            ]
            if finished:
                await self.db.schedule.delete_many({"_id": {"$in": finished}})
                await self.db.leases.delete_many({"_id": {"$in": finished}, "token": token})
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return len(held)

    async def release_leases(self, owner: str) -> int:
        try:
            ours = [_lease(doc) async for doc in self.db.leases.find({"owner": owner, **_BATCHES})]
            if not ours:
                return 0
            work = await self._work()
            await self.db.leases.delete_many({"owner": owner})
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return sum(
            work.owner.get(domain) == lease["_id"] for lease in ours for domain in lease["domains"]
        )

    async def next_due_at(self) -> datetime | None:
        try:
            work = await self._work()
            sites = await self._sites()
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc
        return min((g.due for g in work.groups.values() if work.owned(g, sites)), default=None)

    # --- results ---------------------------------------------------------------------------
    # status          {_id, domains}: the domains of one write of results. Ids sort by time
    #                 of writing (the writer's clock), and a domain's status is in the last
    #                 document naming it.
    # status_results  {_id (the same), results}: that write's results, compressed JSON lines
    #                 in the order of ``domains``; apart, so that finding a domain's document
    #                 does not make FerretDB decode every result.
    # Results are written before their status document and deleted after it. After each
    # write, the documents that hold no monitored domain's latest result are deleted.
    async def record_results(self, results: Sequence[CheckResult]) -> None:
        if not results:
            return
        for result in results:
            if result.timestamp.tzinfo is None:
                raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        try:
            await self._insert_history(results)
            monitored = await self._sites()
            latest = {result.domain: result for result in results if result.domain in monitored}
            if latest:
                for chunk in _chunks([latest[domain] for domain in sorted(latest)]):
                    await self._write_status(chunk, _status_id())
                await self._collect_status(monitored)
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc

    async def _insert_history(self, results: Sequence[CheckResult]) -> None:
        """Append results to history, each under an id made of its domain and time.

        A write cut off half-way (the server went away between history and status) is
        retried whole by the recorder; the documents that made it the first time are then
        duplicates by id and stay as they are, so no check is in history twice.
        """
        try:
            await self.db.history.insert_many(
                [_history_document(result) for result in results], ordered=False
            )
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise

    async def _write_status(self, results: Sequence[CheckResult], status_id: str) -> None:
        lines = b"\n".join(result.model_dump_json().encode() for result in results)
        await _insert(
            self.db.status_results,
            [{"_id": status_id, "results": Binary(zlib.compress(lines, 1))}],
        )
        domains = _joined(result.domain for result in results)
        await _insert(self.db.status, [{"_id": status_id, "domains": domains}])

    async def _delete_status(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        await self.db.status.delete_many({"_id": {"$in": list(ids)}})
        for status_id in ids:  # by one _id each, which FerretDB finds without decoding all
            await self.db.status_results.delete_one({"_id": status_id})

    async def _status_index(self) -> tuple[dict[str, list[str]], dict[str, str]]:
        """The domains of each status document, and the document holding each domain's
        latest result."""
        index = {
            doc["_id"]: _split(doc["domains"])
            async for doc in self.db.status.find(_BATCHES, {"domains": 1})
        }
        holders: dict[str, str] = {}
        for status_id, domains in sorted(index.items()):
            holders.update(dict.fromkeys(domains, status_id))
        return index, holders

    async def _status_lines(self, status_id: str, domains: list[str]) -> dict[str, bytes] | None:
        """Each domain's JSON line in a status document (None if it was deleted meanwhile,
        when a later one holds all its domains)."""
        document = await self.db.status_results.find_one({"_id": status_id})
        if document is None:
            return None
        lines = zlib.decompress(document["results"]).split(b"\n")
        return dict(zip(domains, lines, strict=True))

    async def _collect_status(self, monitored: dict[str, Site]) -> None:
        """Delete the status documents whose every domain has a later one or is removed."""
        index, holders = await self._status_index()
        await self._delete_status(
            [
                status_id
                for status_id, domains in index.items()
                if not any(holders[d] == status_id and d in monitored for d in domains)
            ]
        )

    async def _forget_status(self, removed: set[str]) -> None:
        """Take removed domains out of the status documents, so that a site added again
        later starts without a status, as on SQL."""
        index, _ = await self._status_index()
        for status_id, domains in index.items():
            if removed.isdisjoint(domains):
                continue
            lines = await self._status_lines(status_id, domains) or {}
            kept = [
                CheckResult.model_validate_json(line)
                for domain, line in lines.items()
                if domain not in removed
            ]
            if kept:  # under an id right after the original's, so before any later one
                await self._write_status(kept, status_id + "~")
            await self._delete_status([status_id])

    async def _read_status(self, wanted: set[str]) -> dict[str, CheckResult]:
        """The latest results of these domains (those that have one)."""
        found: dict[str, CheckResult] = {}
        # A document can be deleted between reading the index and reading it, when a later
        # write holds all its domains: then read the index again for those.
        for _ in range(3):
            index, holders = await self._status_index()
            by_document: dict[str, list[str]] = defaultdict(list)
            for domain in wanted:
                if domain in holders:
                    by_document[holders[domain]].append(domain)
            wanted = set()
            for status_id, domains in by_document.items():
                lines = await self._status_lines(status_id, index[status_id])
                if lines is None:
                    wanted.update(domains)
                else:
                    found.update({d: CheckResult.model_validate_json(lines[d]) for d in domains})
            if not wanted:
                break
        return found

    async def list_status(self) -> list[CheckResult]:
        try:
            found = await self._read_status(set(await self._sites()))
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc
        return [found[domain] for domain in sorted(found)]

    async def get_status(self, domain: str) -> CheckResult | None:
        return (await self.get_statuses([domain])).get(domain)

    async def get_statuses(self, domains: Sequence[str]) -> dict[str, CheckResult]:
        try:
            monitored = await self._sites()
            found = await self._read_status({d for d in domains if d in monitored})
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc
        return {domain: found[domain] for domain in domains if domain in found}

    async def history_points(self, domain: str, since: datetime) -> list[HistoryPoint]:
        try:
            cursor = self.db.history.find(
                {"domain": domain, "timestamp": {"$gte": since}},
                {"_id": 0, "timestamp": 1, "state": 1, "verdict": 1, "latency_ms": 1},
            ).sort([("timestamp", ASCENDING), ("_id", ASCENDING)])
            return [
                HistoryPoint(
                    timestamp=doc["timestamp"],
                    verdict=doc.get("verdict") or doc["state"],
                    latency_ms=doc.get("latency_ms"),
                )
                async for doc in cursor
            ]
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc

    async def save_incidents(self, incidents: Sequence[Incident]) -> None:
        if not incidents:
            return
        writes = [
            ReplaceOne(
                {"_id": incident.id},
                {"_id": incident.id, **incident.model_dump(include=set(_INCIDENT_FIELDS))},
                upsert=True,
            )
            for incident in incidents
        ]
        try:
            await _bulk_write(self.db.incidents, writes)
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc

    async def get_incidents(self, ids: Sequence[str]) -> list[Incident]:
        found: list[Incident] = []
        try:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                cursor = self.db.incidents.find({"_id": {"$in": list(chunk)}}, {"_id": 0})
                found.extend([Incident.model_validate(doc) async for doc in cursor])
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc
        return found

    async def list_incidents(
        self, *, domain: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Incident]:
        query: dict[str, Any] = {}
        if domain is not None:
            query["domain"] = domain
        if open_only:
            query["ended_at"] = None
        try:
            cursor = (
                self.db.incidents.find(query, {"_id": 0})
                .sort("started_at", DESCENDING)
                .limit(limit)
            )
            return [Incident.model_validate(doc) async for doc in cursor]
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc

    async def history(self, domain: str, limit: int = 100) -> list[CheckResult]:
        try:
            cursor = (
                self.db.history.find({"domain": domain}, {"_id": 0})
                .sort([("timestamp", DESCENDING), ("_id", DESCENDING)])
                .limit(limit)
            )
            return [_result(doc) async for doc in cursor]
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc

    async def purge_history(self, before: datetime) -> int:
        try:
            deleted = await self.db.history.delete_many({"timestamp": {"$lt": before}})
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return int(deleted.deleted_count)
