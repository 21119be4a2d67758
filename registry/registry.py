"""`Registry`: the rules of the registry over one store (a SQLite file or a PostgreSQL
database).

Everything a caller gives is checked here, once for every backend, before any
transaction: bodies (`registry.validate`), tokens, windows and pages, and usage
events (`registry.events`: validated rows, registered names). Then one store
call per transaction does the SQL (``registry.store``), and the response bodies
are built here from the rows it returns. The location picks the backend: a
path or ``sqlite:PATH`` is a SQLite file (the embedded default), a
``postgresql://`` URL a PostgreSQL database.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from registry import auth, times
from registry._convert import model_body, validate, validate_model
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    RegistryError,
    StorageError,
    ValidationError,
)
from registry.events import Known, validated
from registry.jsonin import pointer
from registry.location import location_of
from registry.model import QueryLlm, QueryModel
from registry.naming import is_name, not_a_name
from registry.query import LLMS, MODELS, Page, Subject, Window, flag, named
from registry.series import Series
from registry.store import Store, Tx, open_store
from registry.store.spool import Spool

if TYPE_CHECKING:  # the training modules import numpy: a command that records no completion
    # never loads it (11 MB and a tenth of a second at every start)
    from registry import nearest
    from registry import weights as rules

__all__ = ["DEFAULT_TIMEOUT", "Outcomes", "Registry"]

DEFAULT_TIMEOUT = 10.0  # seconds a call waits for another writer's lock

# What `Registry.record_usage_groups` returns (named here: the method `list` shadows the builtin).
Outcomes = list[int | RegistryError]


class Registry:
    """A registry in one SQLite file or one PostgreSQL database, shared safely by many
    processes (and, on PostgreSQL, machines).

    ``Registry(path)`` opens or creates the file (mode 0600) and applies
    pending migrations; with ``create=False`` a missing file is a
    `NoRegistryError` instead. A file that is another application's database
    is refused untouched (`NotARegistryError`). ``readonly=True``: nothing can
    be written through it, even by mistake (SQLite's ``mode=ro``; on
    PostgreSQL, read-only transactions, and pending migrations are refused);
    a file whose directory the caller cannot write is read as it is on disk
    (SQLite's ``immutable=1``) when it has no pending write-ahead log.
    ``Registry("postgresql://user@host/db")`` opens a PostgreSQL database
    (psycopg 3 and psycopg_pool), applying pending migrations; ``create`` is
    about files and is ignored there (a database is never created by qllm).
    ``timeout`` is how long a call waits for another writer's lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        readonly: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        create: bool = True,
    ) -> None:
        location = location_of(path)
        self.location = str(location)
        self.readonly = readonly
        self.timeout = _timeout(timeout)
        # How long the last `record_usage_many` held the write lock (seconds).
        self.last_lock_seconds = 0.0
        self._known = Known()
        # Query Models never change once registered: what the weights need of each, kept.
        self._ensembles: dict[str, rules.Ensemble] = {}
        self.store: Store = open_store(location, readonly=readonly, timeout=timeout, create=create)

    @property
    def path(self) -> Path:
        """The SQLite file (a PostgreSQL registry has none: `StorageError`)."""
        path = getattr(self.store, "path", None)
        if not isinstance(path, Path):
            raise StorageError(f"{self.store.where} is not a SQLite file")
        return path

    @property
    def db(self) -> Any:
        """For tools and tests that look at the tables: the SQLite file's
        `sqlite_utils.Database`, or on PostgreSQL a connection of its own whose
        ``execute`` takes the same placeholders."""
        db = getattr(self.store, "db", None)
        if db is None:
            raise StorageError(f"{self.store.where} offers no direct connection")
        return db

    def _reading(self) -> AbstractContextManager[Tx]:
        return self.store.transaction(write=False)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Registry {self.store.where!r}{' readonly' if self.readonly else ''}>"

    # --- users and tokens ------------------------------------------------------------------

    def _caller(self, tx: Tx, token: str | None) -> str | None:
        """The user id behind ``token``; None without one. Unknown or revoked: an error."""
        if token is None:
            return None
        digest = auth.token_hash(token)
        row = tx.token(digest)
        if row is None or not auth.matches(row[0], digest):
            raise AuthenticationError("unknown token")
        if row[2] is not None:
            raise AuthenticationError("token was revoked")
        return row[1]

    def _me(self, tx: Tx, me: Any, token: str | None) -> str | None:
        """The caller for a ``me`` query (None when ``me`` is false)."""
        caller = self._caller(tx, token)
        if flag("/me", me):
            if caller is None:
                raise AuthorizationError("me=true needs a token")
            return caller
        return None

    def create_token(self, user_id: str) -> str:
        """A new token for ``user_id`` (a new user is created): returned once, never stored."""
        user_id = auth.check_user_id(user_id)
        token = auth.new_token()
        with self.store.transaction(write=True) as tx:
            tx.add_token(user_id, auth.token_hash(token), times.now())
        return token

    def revoke_token(self, token: str) -> None:
        """Revoke ``token`` from now on; revoking it again changes nothing."""
        digest = auth.token_hash(token)
        with self.store.transaction(write=True) as tx:
            found = tx.token(digest)
            if found is None or not auth.matches(found[0], digest):
                raise AuthenticationError("unknown token")
            tx.revoke_token(digest, times.now())

    # --- Query LLMs and Query Models ---------------------------------------------------------

    def register(self, body: Any, token: str | None = None) -> QueryLlm:
        """Validate and store ``body``; registering it again changes nothing."""
        llm = body if isinstance(body, QueryLlm) else validate(body)

        def work(tx: Tx) -> None:
            tx.insert_llm(llm, self._caller(tx, token), times.now())

        self.store.run(work, write=True)
        return llm

    def register_model(self, body: Any, token: str | None = None) -> QueryModel:
        """Validate and store a Query Model and its members, all in one transaction.

        Members are registered as by `register`, for the same caller; registering
        the model again changes nothing.
        """
        model = body if isinstance(body, QueryModel) else validate_model(body)

        def work(tx: Tx) -> None:
            user = self._caller(tx, token)
            now = times.now()
            for llm in {m.name: m for m in model.members}.values():
                tx.insert_llm(llm, user, now)
            tx.insert_model(model, user, now)

        self.store.run(work, write=True)
        return model

    def get(
        self,
        name: str,
        metadata: bool = False,
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """The response body of ``name`` (spec 5); with ``metadata``, its statistics (spec 7).

        When ``metadata`` is false, ``me``, ``start`` and ``end`` are ignored.
        """
        return self._get(LLMS, name, metadata, me, start, end, token)

    def get_model(
        self,
        name: str,
        metadata: bool = False,
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """The response body of a Query Model; with ``metadata``, the statistics of the
        usage events recorded for it (``me``, ``start`` and ``end`` as for `get`)."""
        return self._get(MODELS, name, metadata, me, start, end, token)

    def list(
        self,
        count: int = 100,
        offset: int = 0,
        sort: str = "created",
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> builtins.list[str]:
        """Names, ``count`` at a time from ``offset``: newest first or by usage (spec 9)."""
        return self._list(LLMS, count, offset, sort, me, start, end, token)

    def list_models(
        self,
        count: int = 100,
        offset: int = 0,
        sort: str = "created",
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> builtins.list[str]:
        """Query Model names, as `list` gives Query LLM names (same sorts, paging and ``me``)."""
        return self._list(MODELS, count, offset, sort, me, start, end, token)

    def count(self, me: bool = False, token: str | None = None) -> int:
        """How many Query LLMs are registered; with ``me``, how many ``list(me=True)`` has."""
        return self._count(LLMS, me, token)

    def count_models(self, me: bool = False, token: str | None = None) -> int:
        """How many Query Models are registered; with ``me``: as ``list_models(me=True)``."""
        return self._count(MODELS, me, token)

    # The three questions both collections answer alike, by subject.

    def _get(
        self,
        subject: Subject,
        name: str,
        metadata: bool,
        me: bool,
        start: str | datetime | None,
        end: str | datetime | None,
        token: str | None,
    ) -> dict[str, Any]:
        with self._reading() as tx:
            with_metadata = flag("/metadata", metadata)
            if with_metadata:
                user = self._me(tx, me, token)
                window = Window.of(start, end)
            else:
                self._caller(tx, token)
            row = tx.body(subject, named(name, subject.kind))
            if row is None:
                raise NotFoundError(name, kind=subject.kind)
            text, training_table_name, created, user_id = row
            if subject is LLMS:
                result = _llm_body(name, text, training_table_name)
            else:
                members = [_llm_body(*member) for member in tx.members(name)]
                result = model_body(name, training_table_name, members, json.loads(text))
            if with_metadata:
                result["user_id"] = user_id
                result["created"] = times.render(created)
                result.update(tx.totals(name, user, window, subject))
        return result

    def _list(
        self,
        subject: Subject,
        count: int,
        offset: int,
        sort: str,
        me: bool,
        start: str | datetime | None,
        end: str | datetime | None,
        token: str | None,
    ) -> builtins.list[str]:
        with self._reading() as tx:
            user = self._me(tx, me, token)
            page = Page.of(count, offset, sort, start, end)
            return tx.ranked_names(page, user, subject)

    def _count(self, subject: Subject, me: bool, token: str | None) -> int:
        with self._reading() as tx:
            return tx.count_names(self._me(tx, me, token), subject)

    # --- usage ------------------------------------------------------------------------

    def record_usage(
        self,
        name: str,
        token: str | None = None,
        at: str | datetime | None = None,
        request_id: str | None = None,
        chat_prompt_tokens: int = 0,
        chat_completion_tokens: int = 0,
        chat_cost: int | float | str | Decimal = 0,
        embedding_prompt_tokens: int = 0,
        embedding_completion_tokens: int = 0,
        embedding_cost: int | float | str | Decimal = 0,
        query_model: str | None = None,
    ) -> int:
        """Record one usage event; 1 if written, 0 if its ``request_id`` was recorded before.

        ``query_model``: the Query Model the request served, which must have ``name``
        among its members."""
        event = {
            "name": name,
            "at": at,
            "request_id": request_id,
            "chat_prompt_tokens": chat_prompt_tokens,
            "chat_completion_tokens": chat_completion_tokens,
            "chat_cost": chat_cost,
            "embedding_prompt_tokens": embedding_prompt_tokens,
            "embedding_completion_tokens": embedding_completion_tokens,
            "embedding_cost": embedding_cost,
            "query_model": query_model,
        }
        with self.prepare_usage([event], token, batch=False) as spool:
            return self.store.run(lambda tx: tx.write(spool), write=True)

    def record_usage_many(
        self, events: Iterable[Mapping[str, Any]], token: str | None = None
    ) -> int:
        """Record a batch all-or-nothing; returns how many events were new.

        ``events`` may be any iterable, a generator included: it is read once,
        in chunks, validated and spooled before the write lock is taken, so a
        long or slow input never blocks other writers; then one short
        transaction writes the events (see ``last_lock_seconds``). An error
        names the event's index (`ValidationError.events`, `NotFoundError.index`).
        """
        with self.prepare_usage(events, token) as spool:
            self.last_lock_seconds = 0.0
            if not spool.count:
                return 0
            began = time.monotonic()

            def work(tx: Tx) -> int:
                nonlocal began
                began = time.monotonic()  # the lock is held from here (a retry: again)
                return tx.write(spool)

            written = self.store.run(work, write=True)
            self.last_lock_seconds = time.monotonic() - began
            return written

    def prepare_usage(
        self, events: Iterable[Any], token: str | None = None, *, batch: bool = True
    ) -> Spool:
        """Everything `record_usage_many` does before the write lock, as a `Spool` to hand to
        `record_usage_groups` (close it after): the caller found, every event validated
        (`registry.events.validated`), and every name checked registered. ``batch=False``:
        one event, whose errors carry no index."""
        if self.readonly:
            raise StorageError(f"{self.store.where} is open read-only")
        user = None
        if token is not None:
            with self._reading() as tx:
                user = self._caller(tx, token)
        spool = Spool(batch=batch, sums=self.store.sums)
        try:
            for chunk in validated(events, user, times.now(), batch=batch):
                self._known.check(chunk, self._reading, batch=batch)
                spool.add(chunk)
            spool.seal()
        except BaseException:
            spool.close()
            raise
        return spool

    def record_usage_groups(self, jobs: Sequence[Spool]) -> Outcomes:
        """Record several prepared batches (`prepare_usage`) in ONE transaction (one commit,
        one sync).

        Each job runs in its own SAVEPOINT, so a job that fails rolls back alone and
        its outcome is the error, while the others' outcomes are their counts written.
        If the commit itself fails, the `StorageError` is raised: no job was written.
        This is what lets a server share one commit between concurrent requests
        (group commit). The rollups of all the jobs are added at the end, at once
        (`Tx.apply_rollups`): on PostgreSQL every rollup row lock of the group is taken
        there, in one global order, which two servers writing at once share (no
        deadlock); a job whose sums would pass 64 bits still fails alone, in its
        savepoint.
        """

        def work(tx: Tx) -> Outcomes:
            outcomes: Outcomes = []
            for spool in jobs:
                try:
                    with tx.savepoint():
                        written = tx.add_events(spool)
                except RegistryError as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(written)
            tx.apply_rollups()
            return outcomes

        return self.store.run(work, write=True)

    def claim_usage(self, events: Iterable[Mapping[str, Any]], token: str | None = None) -> int:
        """Give the caller (``token``) the events of ``events`` that were recorded without a
        token: a batch imported without its token, mended by claiming it with the same
        events. Each event's ``request_id`` must name a stored event with the same content,
        recorded anonymously (or already the caller's: skipped); otherwise nothing is
        claimed (`ValidationError`, each problem at its event's index). The rollups move
        in the same transaction. How many events were claimed."""
        if token is None:
            raise AuthorizationError("claiming usage needs a token")
        with self._reading() as tx:
            user = self._caller(tx, token)
        assert user is not None
        with self.prepare_usage(events, None) as spool:  # as they were recorded: anonymous
            return self.store.run(lambda tx: tx.claim(spool, user), write=True)

    def usage_series(
        self,
        start: str | datetime,
        end: str | datetime | None = None,
        bucket: str = "day",
        group_by: Iterable[str] = (),
        names: Iterable[str] | None = None,
        query_model: str | None = None,
        me: bool = False,
        token: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Usage per bucket and group over ``[start, end)`` (USAGE_SERIES.md): the ``data`` list.

        ``bucket``: hour, day, week (from Monday) or month, aligned in UTC; ``group_by``:
        any of name, model, user_id; ``names``: only these Query LLMs.
        """
        with self._reading() as tx:
            user = self._me(tx, me, token)
            query = Series.of(start, end, bucket, group_by, names, query_model)
            return tx.series(query, user)

    def rebuild_rollups(self) -> dict[str, int]:
        """Recompute the rollups from the usage events; how many rows each rollup has."""
        with self.store.transaction(write=True) as tx:
            return tx.rebuild_rollups()

    # --- completions and training tables ------------------------------------------------------

    def record_completion(
        self,
        id: str,
        query_model: str,
        embedding: Any,
        votes: Any,
        response_format_hash: str = "",
        at: str | datetime | None = None,
        token: str | None = None,
    ) -> int:
        """Record one completion of ``query_model``: 1 if written, 0 if ``id`` was recorded
        before with the same content (other content: `ConflictError`)."""
        completion = {
            "id": id,
            "query_model": query_model,
            "embedding": embedding,
            "votes": votes,
            "response_format_hash": response_format_hash,
            "at": at,
        }
        return self._record([completion], token, batch=False)

    def record_completion_dict(self, completion: Any, token: str | None = None) -> int:
        """`record_completion` of one completion given as a dict (``id`` included), as a
        surface reads it from a body: unknown keys are reported as such."""
        return self._record([completion], token, batch=False)

    def record_completions(
        self, completions: Iterable[Mapping[str, Any]], token: str | None = None
    ) -> int:
        """Record a batch of completions (dicts with the keys of `record_completion`, ``id``
        included) all-or-nothing; how many were new. Problems carry the completion's index
        (``/3/embedding/7``), as a usage batch's do."""
        return self._record(completions, token, batch=True)

    def _record(self, given: Iterable[Any], token: str | None, *, batch: bool) -> int:
        from registry import completions  # noqa: PLC0415 - numpy only when used

        if self.readonly:
            raise StorageError(f"{self.store.where} is open read-only")
        user = None
        if token is not None:
            with self._reading() as tx:
                user = self._caller(tx, token)
        found = completions.validated(given)
        problems = list(found.problems)
        with self._reading() as tx:
            known = {
                name: self._ensemble(tx, name) for name in {c.query_model for _, c in found.items}
            }
        now = times.now()
        rows: builtins.list[tuple[Any, ...]] = []
        where: builtins.list[int | None] = []
        timeless: set[int] = set()
        for index, completion in found.items:
            ensemble = known[completion.query_model]
            if ensemble is None:
                message = f"no Query Model named {completion.query_model} is registered"
                problems.append((index, "/query_model", message))
                continue
            wrong = ensemble.vote_problems(completion)
            if wrong:
                problems.extend((index, pointer(path), message) for path, message in wrong)
                continue
            if completion.at is None:
                timeless.add(len(rows))
            rows.append(
                (
                    completion.id,
                    completion.query_model,
                    ensemble.training_table_name,
                    completion.response_format_hash,
                    completion.dimensions,
                    completion.embedding,
                    completions.votes_text(completion.votes),
                    now if completion.at is None else completion.at,
                    user,
                    now,
                )
            )
            where.append(index if batch else None)
        if problems:
            problems = sorted(problems)[: completions.MAX_PROBLEMS]
            if batch:
                raise ValidationError(events=problems)
            raise ValidationError([(path, message) for _, path, message in problems])
        if not rows:
            return 0
        return self.store.run(lambda tx: tx.write_completions(rows, where, timeless), write=True)

    def get_completion(
        self,
        id: str,
        embedding: bool = False,
        token: str | None = None,
    ) -> dict[str, Any]:
        """A recorded completion: its fields (the embedding only when asked), ``user_id``,
        ``created``, and ``correct_confidence_id`` once marked."""
        from registry import completions  # noqa: PLC0415 - numpy only when used

        completions.check_id(id)
        with_embedding = flag("/embedding", embedding)
        with self._reading() as tx:
            self._caller(tx, token)
            row = tx.completion(id)
        if row is None:
            raise NotFoundError(id, kind="completion")
        (_, model, _, format_hash, _, vector, votes, at, user_id, created, correct) = row
        result: dict[str, Any] = {
            "id": id,
            "query_model": model,
            "response_format_hash": format_hash,
            "votes": json.loads(votes),
            "at": times.render(at),
            "user_id": user_id,
            "created": times.render(created),
        }
        if with_embedding:
            result["embedding"] = completions.float32_list(vector)
        if correct is not None:
            result["correct_confidence_id"] = correct
        return result

    def mark(
        self,
        id: str,
        correct_confidence_id: str,
        token: str | None = None,
    ) -> None:
        """Mark which answer was correct: the completion becomes a row of its Query Model's
        training table (marking again replaces the answer). Only the user who recorded it
        may, unless it was recorded without a token."""
        from registry import completions  # noqa: PLC0415 - numpy only when used
        from registry import weights as rules  # noqa: PLC0415 - numpy only when used

        problems: builtins.list[tuple[str, str]] = []
        checks: tuple[Callable[[], object], ...] = (
            lambda: completions.check_id(id),
            lambda: completions.mark_of(correct_confidence_id),
        )
        for check in checks:
            try:
                check()
            except ValidationError as exc:
                problems.extend(exc.errors)
        if problems:
            raise ValidationError(sorted(problems))

        def work(tx: Tx) -> None:
            row = self._owned(tx, id, token, "mark")
            ensemble = self._ensemble(tx, row[1])
            assert ensemble is not None  # a completion's Query Model is registered
            scores = rules.row_scores(ensemble, json.loads(row[6]), correct_confidence_id)
            tx.put_mark(row, correct_confidence_id, scores.tobytes(), times.now())

        self.store.run(work, write=True)

    def unmark(
        self,
        id: str,
        token: str | None = None,
    ) -> None:
        """Remove the completion's row from its training table (the completion stays)."""
        from registry import completions  # noqa: PLC0415 - numpy only when used

        completions.check_id(id)
        self.store.run(lambda tx: tx.delete_mark(self._owned(tx, id, token, "unmark")), write=True)

    def _owned(self, tx: Tx, completion: str, token: str | None, verb: str) -> tuple[Any, ...]:
        """A completion's row, if the caller may mark it: `NotFoundError`, `AuthorizationError`."""
        caller = self._caller(tx, token)
        row = tx.completion(completion)
        if row is None:
            raise NotFoundError(completion, kind="completion")
        owner = row[8]
        if owner is not None and owner != caller:
            raise AuthorizationError(
                f"completion {completion} was recorded by another user: only they may {verb} it"
            )
        return row

    def weights(
        self,
        query_model: str,
        embedding: Any,
        response_format_hash: str | None = "",
        token: str | None = None,
    ) -> dict[str, Any]:
        """Each member's weight for a new prompt (its ``embedding``): from the ``top``
        nearest marked completions of the model's training table of the same format and
        embedding length; a static model's own weights."""
        from registry import completions  # noqa: PLC0415 - numpy only when used
        from registry import weights as rules  # noqa: PLC0415 - numpy only when used

        problems = [] if is_name(query_model) else [("/name", not_a_name(MODELS.kind))]
        try:
            query = completions.weights_query_of(
                {"embedding": embedding, "response_format_hash": response_format_hash}
            )
        except ValidationError as exc:
            problems.extend(exc.errors)
        if problems:
            raise ValidationError(sorted(problems))
        with self._reading() as tx:
            self._caller(tx, token)
            ensemble = self._ensemble(tx, query_model)
            if ensemble is None:
                raise NotFoundError(query_model, kind="Query Model")
            table_name = ensemble.training_table_name
            if table_name is None:
                return rules.static(ensemble)
            table = self._table(tx, ensemble, table_name, query)
        return rules.answer(ensemble, table.nearest(query.embedding, ensemble.top))

    def _table(self, tx: Tx, ensemble: rules.Ensemble, name: str, query: Any) -> nearest.Table:
        """The training table's rows of the query's format and length, in step with ``tx``."""
        from registry import nearest  # noqa: PLC0415 - numpy only when used

        version, unmarks = tx.training_state(name)
        fmt, dimensions = query.response_format_hash, len(query.embedding) // 4

        def load() -> nearest.Table:
            count = tx.training_count(name, fmt, dimensions)
            rows = tx.training_rows(name, fmt, dimensions)
            return nearest.Table.load(dimensions, ensemble.tables, count, rows, version, unmarks)

        return nearest.TABLES.get(
            (self.location, name, fmt, str(dimensions)),
            version,
            unmarks,
            load,
            lambda after: tx.training_rows(name, fmt, dimensions, after),
        )

    def training_summary(self, query_model: str, token: str | None = None) -> dict[str, Any]:
        """A Query Model's training table as a whole: how many rows it holds (every format
        and length), and each member's weight from its mean score over all of them (by the
        formula of `weights`). A static model: its own weights, no rows."""
        from registry import weights as rules  # noqa: PLC0415 - numpy only when used

        named(query_model, MODELS.kind)
        with self._reading() as tx:
            self._caller(tx, token)
            ensemble = self._ensemble(tx, query_model)
            if ensemble is None:
                raise NotFoundError(query_model, kind="Query Model")
            table_name = ensemble.training_table_name
            blobs = [] if table_name is None else builtins.list(tx.table_scores(table_name))
        result = rules.overall(ensemble, blobs)
        result["training_table_name"] = table_name
        return result

    def _ensemble(self, tx: Tx, name: str) -> rules.Ensemble | None:
        """What the weights need of a registered Query Model; None if there is none."""
        from registry import weights as rules  # noqa: PLC0415 - numpy only when used

        known = self._ensembles.get(name)
        if known is not None:
            return known
        row = tx.body(MODELS, name)
        if row is None:
            return None
        members = [_llm_body(*member) for member in tx.members(name)]
        known = rules.Ensemble.of(model_body(name, row[1], members, json.loads(row[0])))
        self._ensembles[name] = known
        return known


def _llm_body(name: str, body: str, training_table_name: str | None) -> dict[str, Any]:
    """A stored Query LLM's response body (spec 5) without metadata."""
    result: dict[str, Any] = json.loads(body)
    result["name"] = name
    if training_table_name is not None:
        result["training_table_name"] = training_table_name
    return result


MAX_TIMEOUT = 1_000_000  # seconds (11 days): in milliseconds, it still fits the backends' ints


def _timeout(value: Any) -> float:
    """How long a call may wait for a lock: a positive, finite number of seconds."""
    if (
        value.__class__ not in (int, float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_TIMEOUT
    ):
        raise ValidationError.one(
            "/timeout", f"must be a number of seconds, more than 0 and at most {MAX_TIMEOUT}"
        )
    return float(value)
