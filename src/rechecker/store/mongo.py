"""The store on MongoDB through PyMongo's async API, in the original's ``endpoints`` database.

Sites, status, schedule and leases are keyed by ``_id`` = domain (incidents by their id),
with the original's ``domain`` field kept beside it where people read it: every server indexes
``_id``, and a filter on one ``_id`` is the only one FerretDB hands down to its backend.

The hot path (claim, record, complete) is written for FerretDB 1.24 on SQLite as much as for
MongoDB, because FerretDB is what makes a naive layout slow: it runs every update and replace
as a transaction of its own (about 20 ms each on a 2-core test machine, against 30 ms for a
whole ``insert_many`` of 250 documents), decodes the whole collection for any filter but a
single ``_id`` (and even that one SQLite scans, its ``_id`` index being on another
expression), and holds one of its 100 SQLite connections per statement until a command ends, so
one ``bulk_write`` of about 100 updates waits for itself forever. Hence: documents are replaced
by ``delete_many`` plus ``insert_many`` (two transactions, whatever the count), updates and
upserts that remain go in commands of at most ``_BULK`` statements, and the collections
scanned on every claim hold small documents.

Only the portable subset of MongoDB is used — single-document writes, unordered bulk
writes, plain indexes; no multi-document transactions, time-series collections, TTL indexes
or ``$lookup`` — so that MongoDB 6-8, FerretDB, Amazon DocumentDB and Azure Cosmos DB for
MongoDB all work. Every write is idempotent, so a retried batch never doubles anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError
from pymongo.uri_parser import parse_uri

from rechecker.models import CheckResult, HistoryPoint, Incident, Site, utcnow
from rechecker.redact import redact_text, redact_url
from rechecker.store.base import Lease, Store, StoreError

DEFAULT_DATABASE = "endpoints"
DUPLICATE_KEY = 11000
_CHUNK = 1000
#: Statements per update command; FerretDB 1.24 deadlocks on about 100 at once (see above).
_BULK = 20

_RESULT_FIELDS = (
    "domain",
    "url",
    "timestamp",
    "state",
    "verdict",
    "status_code",
    "error_class",
    "error_message",
    "latency_ms",
    "dns",
    "http",
    "state_since",
    "consecutive_failures",
    "consecutive_successes",
    "incident_id",
)
_HISTORY_EXCLUDE = {"state_since", "consecutive_failures", "consecutive_successes", "incident_id"}
_INCIDENT_FIELDS = ("id", "domain", "started_at", "ended_at", "cause", "message")


def _document(result: CheckResult) -> dict[str, Any]:
    """The status document; history documents leave out the state-tracking fields."""
    document = result.model_dump(mode="json", exclude={"timestamp", "state_since"})
    document["timestamp"] = result.timestamp  # a BSON date, so ranges and sorting work
    document["state_since"] = result.state_since
    return document


def _result(document: dict[str, Any]) -> CheckResult:
    return CheckResult.model_validate(
        {key: document[key] for key in _RESULT_FIELDS if document.get(key) is not None}
    )


def _site(document: dict[str, Any]) -> Site:
    return Site.model_validate(
        {key: document.get(key) for key in ("domain", "url", "inventory_id", "added_at")}
    )


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


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


class MongoStore(Store):
    def __init__(self, url: str, *, timeout_ms: int = 5000) -> None:
        self._url = url
        self._database_name = parse_uri(url).get("database") or DEFAULT_DATABASE
        self._timeout_ms = timeout_ms
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

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
            await db.schedule.create_index([("next_due_at", ASCENDING)], name="next_due_at")
            await db.leases.create_index([("token", ASCENDING)], name="token")
            await db.leases.create_index([("owner", ASCENDING)], name="owner")
            await db.history.create_index(
                [("domain", ASCENDING), ("timestamp", DESCENDING)], name="domain_timestamp"
            )
            await db.history.create_index([("timestamp", ASCENDING)], name="timestamp")
            await db.incidents.create_index(
                [("domain", ASCENDING), ("started_at", DESCENDING)], name="domain_started"
            )
            await db.incidents.create_index([("started_at", DESCENDING)], name="started")
            await self._schedule_unscheduled()
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

    # --- sites -----------------------------------------------------------------------------
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
            inserted = await _insert(
                self.db.sites, [{"_id": site.domain, **site.model_dump()} for site in new]
            )
            # Every listed site, not only the new ones: this also schedules a site whose
            # insert an earlier call got through but whose schedule it did not.
            await self._schedule({site.domain: site.added_at for site in unique})
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return [str(domain) for domain in inserted]

    async def remove_sites(self, domains: Sequence[str]) -> list[str]:
        try:
            present = sorted(await self._existing(list(dict.fromkeys(domains))))
            for chunk in _chunks(present):
                await self.db.status.delete_many({"_id": {"$in": list(chunk)}})
                await self.db.sites.delete_many({"_id": {"$in": list(chunk)}})
                await self.db.schedule.delete_many({"_id": {"$in": list(chunk)}})
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return present

    # --- shared work ------------------------------------------------------------------------
    # Small collections keyed by domain, and the sites collection is never written while
    # working:
    #   schedule   {_id, next_due_at}: when each monitored site is due; one per site.
    #   leases     {_id, domain, owner, token, expires_at}: one per site being checked.
    #   takeovers  {_id: "domain token"}: for a moment, who replaces an expired lease.
    # Inserting a lease is the claim: the unique _id lets exactly one of two racing workers
    # win. A conditional update is not enough, as FerretDB does not re-check update filters
    # atomically per document. Completing rewrites the schedule of the sites still held, then
    # deletes their leases; a worker dying in between leaves an expired lease on a site
    # without a schedule, which the next claim takes as due.
    async def _schedule(self, due: dict[str, datetime]) -> None:
        """Give each of these sites the due time given unless it has one already."""
        scheduled: set[str] = set()
        for chunk in _chunks(list(due)):
            cursor = self.db.schedule.find({"_id": {"$in": list(chunk)}}, {"_id": 1})
            scheduled.update([doc["_id"] async for doc in cursor])
        await _insert(
            self.db.schedule,
            [{"_id": d, "next_due_at": at} for d, at in due.items() if d not in scheduled],
        )

    async def _schedule_unscheduled(self) -> None:
        """Schedule sites stored before due times moved out of ``sites``, due when they were
        (sites written by other tools may have neither time: due now)."""
        now = utcnow()
        cursor = self.db.sites.find({}, {"_id": 1, "added_at": 1, "next_due_at": 1})
        await self._schedule(
            {
                doc["_id"]: doc.get("next_due_at") or doc.get("added_at") or now
                async for doc in cursor
            }
        )

    async def claim_due(self, owner: str, now: datetime, lease_s: float, limit: int) -> Lease:
        token = uuid.uuid4().hex
        expires = now + timedelta(seconds=lease_s)
        try:
            live, expired = await self._leases(now)
            cursor = (
                self.db.schedule.find({"next_due_at": {"$lte": now}}, {"_id": 1})
                .sort("next_due_at", ASCENDING)
                .limit(limit + len(live))
            )
            due = [doc["_id"] async for doc in cursor if doc["_id"] not in live]
            candidates = list(dict.fromkeys([*await self._unscheduled(expired), *due]))[:limit]
            taken = await self._take_over(
                {domain: expired[domain] for domain in candidates if domain in expired}, now
            )
            candidates = [d for d in candidates if d not in expired or d in taken]
            won = await _insert(
                self.db.leases,
                [
                    {
                        "_id": domain,
                        "domain": domain,
                        "owner": owner,
                        "token": token,
                        "expires_at": expires,
                    }
                    for domain in candidates
                ],
            )
            if taken:
                await self.db.takeovers.delete_many({"_id": {"$in": list(taken.values())}})
            won = await self._still_due(token, won, now)
            if not won:
                return Lease(token=token, sites=[])
            cursor = self.db.sites.find({"_id": {"$in": won}}, {"_id": 0}).sort("domain", ASCENDING)
            sites = [_site(doc) async for doc in cursor]
            await self._forget(token, set(won) - {site.domain for site in sites})
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return Lease(token=token, sites=sites)

    async def _leases(self, now: datetime) -> tuple[set[str], dict[str, str]]:
        """Domains with a live lease, and the token of each expired lease by domain."""
        live: set[str] = set()
        expired: dict[str, str] = {}
        async for lease in self.db.leases.find({}, {"_id": 1, "token": 1, "expires_at": 1}):
            if lease["expires_at"] < now:
                expired[lease["_id"]] = lease["token"]
            else:
                live.add(lease["_id"])
        return live, expired

    async def _unscheduled(self, expired: dict[str, str]) -> list[str]:
        """Domains of expired leases whose completion died between schedule and lease."""
        if not expired:
            return []
        cursor = self.db.schedule.find({"_id": {"$in": list(expired)}}, {"_id": 1})
        scheduled = {doc["_id"] async for doc in cursor}
        return sorted(domain for domain in expired if domain not in scheduled)

    async def _take_over(self, expired: dict[str, str], now: datetime) -> dict[str, str]:
        """Delete the expired leases this claim may replace; returns their takeover ids.

        Two workers may both see a lease expired, and FerretDB deletes what its filter matched
        a moment before, so one worker's delete could remove the lease the other has just
        inserted. Inserting a takeover document named after the expired lease first lets
        exactly one of them delete it.
        """
        if not expired:
            return {}
        ids = {domain: f"{domain} {token}" for domain, token in expired.items()}
        won = set(await _insert(self.db.takeovers, [{"_id": i} for i in ids.values()]))
        taken = {domain: i for domain, i in ids.items() if i in won}
        if taken:
            await self.db.leases.delete_many(
                {
                    "_id": {"$in": sorted(taken)},
                    "token": {"$in": sorted({expired[domain] for domain in taken})},
                    "expires_at": {"$lt": now},
                }
            )
        return taken

    async def _still_due(self, token: str, won: list[str], now: datetime) -> list[str]:
        """Give back the sites another worker checked between our reading and our claim.

        A lease can be inserted only after the previous holder deleted its own, which it does
        after writing the next due time, so that time is visible here.
        """
        if not won:
            return []
        cursor = self.db.schedule.find(
            {"_id": {"$in": won}, "next_due_at": {"$gt": now}}, {"_id": 1}
        )
        done = {doc["_id"] async for doc in cursor}
        if done:
            await self.db.leases.delete_many({"token": token, "_id": {"$in": sorted(done)}})
        return [domain for domain in won if domain not in done]

    async def _forget(self, token: str, removed: set[str]) -> None:
        """Drop the leases and schedule of sites removed while they were being claimed."""
        if removed:
            await self.db.leases.delete_many({"token": token, "_id": {"$in": sorted(removed)}})
            await self.db.schedule.delete_many({"_id": {"$in": sorted(removed)}})

    async def complete_lease(
        self, token: str, domains: Sequence[str], next_due_at: datetime
    ) -> int:
        try:
            cursor = self.db.leases.find(
                {"token": token, "_id": {"$in": list(set(domains))}}, {"_id": 1}
            )
            held = sorted([doc["_id"] async for doc in cursor])
            if not held:
                return 0
            await self.db.schedule.delete_many({"_id": {"$in": held}})
            due = [{"_id": d, "next_due_at": next_due_at} for d in held]
            # A sync may have scheduled a site in the moment it had no schedule: overwrite.
            written = set(await _insert(self.db.schedule, due))
            await _bulk_write(
                self.db.schedule,
                [ReplaceOne({"_id": doc["_id"]}, doc) for doc in due if doc["_id"] not in written],
            )
            await self.db.leases.delete_many({"token": token, "_id": {"$in": held}})
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return len(held)

    async def release_leases(self, owner: str) -> int:
        try:
            result = await self.db.leases.delete_many({"owner": owner})
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return int(result.deleted_count)

    async def next_due_at(self) -> datetime | None:
        try:
            document = await self.db.schedule.find_one(
                {}, {"_id": 0, "next_due_at": 1}, sort=[("next_due_at", ASCENDING)]
            )
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc
        value = None if document is None else document.get("next_due_at")
        return value if isinstance(value, datetime) else None

    # --- results ---------------------------------------------------------------------------
    async def record_results(self, results: Sequence[CheckResult]) -> None:
        if not results:
            return
        for result in results:
            if result.timestamp.tzinfo is None:
                raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        documents = [_document(result) for result in results]
        try:
            await self._insert_history(documents)
            monitored = await self._existing([doc["domain"] for doc in documents])
            latest = {doc["domain"]: doc for doc in documents if doc["domain"] in monitored}
            if latest:
                await self._write_status([{"_id": d, **doc} for d, doc in sorted(latest.items())])
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc

    async def _insert_history(self, documents: list[dict[str, Any]]) -> None:
        """Append results to history, each under an id made of its domain and time.

        A write cut off half-way (the server went away between history and status) is
        retried whole by the recorder; the documents that made it the first time are then
        duplicates by id and stay as they are, so no check is in history twice.
        """
        try:
            await self.db.history.insert_many(
                [
                    {
                        "_id": f"{doc['domain']}@{doc['timestamp'].isoformat()}",
                        **{k: v for k, v in doc.items() if k not in _HISTORY_EXCLUDE},
                    }
                    for doc in documents
                ],
                ordered=False,
            )
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise

    async def _write_status(self, documents: list[dict[str, Any]]) -> None:
        """Make these the domains' status documents: delete the old ones, insert the new.

        Two writes for the batch instead of one replace per domain (see the module's
        docstring), at the price of a reader missing a domain's status for that moment. A
        writer racing on the same domain (a check run through the API) makes an insert fail;
        those few are replaced one by one.
        """
        for chunk in _chunks([doc["_id"] for doc in documents]):
            await self.db.status.delete_many({"_id": {"$in": list(chunk)}})
        inserted = set(await _insert(self.db.status, [dict(doc) for doc in documents]))
        await _bulk_write(
            self.db.status,
            [
                ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)
                for doc in documents
                if doc["_id"] not in inserted
            ],
        )

    async def list_status(self) -> list[CheckResult]:
        try:
            cursor = self.db.status.find({}, {"_id": 0}).sort("domain", ASCENDING)
            return [_result(doc) async for doc in cursor]
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc

    async def get_status(self, domain: str) -> CheckResult | None:
        try:
            document = await self.db.status.find_one({"_id": domain}, {"_id": 0})
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc
        return None if document is None else _result(document)

    async def get_statuses(self, domains: Sequence[str]) -> dict[str, CheckResult]:
        found: dict[str, CheckResult] = {}
        try:
            for chunk in _chunks(list(dict.fromkeys(domains))):
                cursor = self.db.status.find({"_id": {"$in": list(chunk)}}, {"_id": 0})
                found.update({doc["domain"]: _result(doc) async for doc in cursor})
        except PyMongoError as exc:
            raise self._error("store unavailable", exc) from exc
        return found

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
