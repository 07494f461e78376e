"""The store on MongoDB through PyMongo's async API, in the original's ``endpoints`` database.

Sites, status and leases are keyed by ``_id`` = domain (incidents by their id), with the
original's ``domain`` field kept beside it: every server indexes ``_id``, and FerretDB pushes
down only ``_id`` lookups, so keyed reads and upserts stay fast there too.

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
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError
from pymongo.uri_parser import parse_uri

from rechecker.models import CheckResult, HistoryPoint, Incident, Site
from rechecker.redact import redact_text, redact_url
from rechecker.store.base import Lease, Store, StoreError

DEFAULT_DATABASE = "endpoints"
DUPLICATE_KEY = 11000
_CHUNK = 1000

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
            await db.sites.create_index([("next_due_at", ASCENDING)], name="next_due_at")
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
            if changed:
                await self.db.sites.bulk_write(changed, ordered=False)
            inserted = await self._insert_new(new)
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return inserted

    async def _insert_new(self, new: list[Site]) -> list[str]:
        """Insert, tolerating another replica inserting the same domain at the same moment."""
        inserted: list[str] = []
        for chunk in _chunks(new):
            try:
                await self.db.sites.insert_many(
                    [
                        {"_id": site.domain, **site.model_dump(), "next_due_at": site.added_at}
                        for site in chunk
                    ],
                    ordered=False,
                )
                inserted.extend(site.domain for site in chunk)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(error.get("code") != DUPLICATE_KEY for error in errors):
                    raise
                lost = {error["index"] for error in errors}
                inserted.extend(site.domain for i, site in enumerate(chunk) if i not in lost)
        return inserted

    async def remove_sites(self, domains: Sequence[str]) -> list[str]:
        try:
            present = sorted(await self._existing(list(dict.fromkeys(domains))))
            for chunk in _chunks(present):
                await self.db.status.delete_many({"_id": {"$in": list(chunk)}})
                await self.db.sites.delete_many({"_id": {"$in": list(chunk)}})
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc
        return present

    # --- shared work ------------------------------------------------------------------------
    # Leases live in their own collection with a unique index on ``domain``: inserting a lease
    # is the claim, and the index lets exactly one of two racing workers win. A conditional
    # update_many is not enough: FerretDB does not re-check filters atomically per document.
    async def claim_due(self, owner: str, now: datetime, lease_s: float, limit: int) -> Lease:
        token = uuid.uuid4().hex
        expires = now + timedelta(seconds=lease_s)
        try:
            live, expired = await self._leases(now)
            due = {"$or": [{"next_due_at": {"$lte": now}}, {"next_due_at": None}]}
            cursor = (
                self.db.sites.find(due, {"_id": 0, "domain": 1})
                .sort("next_due_at", ASCENDING)
                .limit(limit + len(live))
            )
            candidates = [doc["domain"] async for doc in cursor if doc["domain"] not in live][
                :limit
            ]
            stale = [lease["token"] for lease in expired if lease["domain"] in candidates]
            if stale:
                await self.db.leases.delete_many(
                    {"token": {"$in": stale}, "expires_at": {"$lt": now}}
                )
            won = await self._insert_leases(
                [
                    {
                        "_id": domain,
                        "domain": domain,
                        "owner": owner,
                        "token": token,
                        "expires_at": expires,
                    }
                    for domain in candidates
                ]
            )
            if not won:
                return Lease(token=token, sites=[])
            cursor = self.db.sites.find({"_id": {"$in": won}}, {"_id": 0}).sort("domain", ASCENDING)
            return Lease(token=token, sites=[_site(doc) async for doc in cursor])
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc

    async def _leases(self, now: datetime) -> tuple[set[str], list[dict[str, Any]]]:
        """Domains with a live lease, and the expired lease documents."""
        live: set[str] = set()
        expired: list[dict[str, Any]] = []
        async for lease in self.db.leases.find(
            {}, {"_id": 0, "domain": 1, "token": 1, "expires_at": 1}
        ):
            if lease["expires_at"] < now:
                expired.append(lease)
            else:
                live.add(lease["domain"])
        return live, expired

    async def _insert_leases(self, leases: list[dict[str, Any]]) -> list[str]:
        if not leases:
            return []
        try:
            await self.db.leases.insert_many(leases, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            lost = {error["index"] for error in errors}
            return [lease["domain"] for i, lease in enumerate(leases) if i not in lost]
        return [lease["domain"] for lease in leases]

    async def complete_lease(
        self, token: str, domains: Sequence[str], next_due_at: datetime
    ) -> int:
        try:
            cursor = self.db.leases.find(
                {"token": token, "_id": {"$in": list(set(domains))}}, {"_id": 0, "domain": 1}
            )
            held = [doc["domain"] async for doc in cursor]
            if not held:
                return 0
            await self.db.sites.update_many(
                {"_id": {"$in": held}}, {"$set": {"next_due_at": next_due_at}}
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
            document = await self.db.sites.find_one(
                {"next_due_at": {"$ne": None}},
                {"_id": 0, "next_due_at": 1},
                sort=[("next_due_at", ASCENDING)],
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
            await self.db.history.insert_many(
                [{k: v for k, v in doc.items() if k not in _HISTORY_EXCLUDE} for doc in documents],
                ordered=False,
            )
            monitored = await self._existing([doc["domain"] for doc in documents])
            latest = {doc["domain"]: doc for doc in documents if doc["domain"] in monitored}
            if latest:
                await self._write_status([{"_id": d, **doc} for d, doc in sorted(latest.items())])
        except PyMongoError as exc:
            raise self._error("store write failed", exc) from exc

    async def _write_status(self, documents: list[dict[str, Any]]) -> None:
        """Insert new status documents, replace existing ones.

        Insert first, then replace only where the key existed: on FerretDB an upsert of an
        existing document costs a hundred times a plain replace.
        """
        try:
            await self.db.status.insert_many([dict(doc) for doc in documents], ordered=False)
            return
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            existing = [documents[error["index"]] for error in errors]
        await self.db.status.bulk_write(
            [ReplaceOne({"_id": doc["_id"]}, doc) for doc in existing], ordered=False
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
            await self.db.incidents.bulk_write(writes, ordered=False)
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
