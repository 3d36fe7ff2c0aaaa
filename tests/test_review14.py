"""Review of issue 14's fault handling (reconnect, revive, abandon), at the store level: two
stores on one crawl are two processes, the database is a real one (tests/pg.py).

A lost reply to a COMMIT is made by letting the COMMIT through to the server and then
dropping the connection before the client hears back: the server has committed, the client
cannot know. Nothing about the database is faked.

Which fail on main (e3e9cac..9d93797) is said on each test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import cast

import asyncpg
import pytest
from asyncpg.transaction import Transaction

from crawler.engine.hostshare import ABANDON_AT, HostShare
from crawler.engine.jobs import Work
from crawler.policy.frontier import Frontier
from storage import Completion, Gaps, StateLocked, Store, open_store
from storage.locations import Location, quoted
from storage.postgres import PostgresStore
from storage.postgres.session import connect
from storage.postgres.writes import _ITEMS_IN_ORDER
from tests import pg
from tests.test_hostshare import Stand
from tests.test_store_reconnect import NOW, cut, on, process, rows


@contextlib.contextmanager
def reply_lost(store: PostgresStore, *, committed: bool = True) -> Iterator[list[int]]:
    """The next COMMIT of `store` reaches the server and commits; its reply is lost (the
    connection drops). Yields a list that holds 1 once it happened. Not `committed`: the
    connection drops just before the COMMIT, which never reaches the server."""
    original = Transaction.commit
    happened: list[int] = []

    async def commit(self: Transaction) -> None:
        connection: asyncpg.Connection = self._connection
        mine = not happened and connection is store._transactions.conn
        if committed or not mine:
            await original(self)
        if mine:
            happened.append(1)
            connection.terminate()
            raise ConnectionResetError("the reply to COMMIT was lost")

    Transaction.commit = commit
    try:
        yield happened
    finally:
        Transaction.commit = original


async def test_a_claim_whose_commit_reply_is_lost_leaves_nothing_leased_unseen(
        pg_url: str, postgres: pg.Cluster) -> None:
    # FAILED BEFORE THE FIX. The claim's requests were noted as "out" (what the run knows it holds)
    # inside the transaction, before its COMMIT: the claim ran again on the new connection
    # and leased others, and the ones of the first try (committed, never handed to the
    # engine) stayed leased to the run, excluded from revive's "unknown, back to the
    # queue". Nothing fetched them: next_due said nothing was left, the host was never idle
    # (never handed back), and the crawl ended with them leased ("page limit", not
    # "finished", and a resume needed) -- with other processes, they wait on it.
    async with process(pg_url, hosts=1) as a:
        await a.add(on("h", 2))
        with reply_lost(a) as happened:
            got = await a.claim(1, NOW)
        assert happened and a._transactions.reconnects == 1
        assert len(got) == 1
        await a.record(Completion(got[0].id, 200))
        await a.flush()
        leased = rows(postgres, pg_url, "SELECT count(*) FROM S.requests WHERE state = 1")
        assert leased == "0", "a request leased to the run that the run never saw"
        again = await a.claim(10, NOW)
        assert len(again) == 1, "the other request is not to be had"


async def test_a_group_commit_whose_reply_is_lost_is_counted_once_not_fenced(
        pg_url: str, postgres: pg.Cluster) -> None:
    # FAILED BEFORE THE FIX. The outcomes were committed; run again on the new
    # connection they are no longer leased, so they are "fenced": a warning per request
    # that its lease was taken over (none was), `fenced` counts them, and the ledger's
    # tally (the live display, progress lines) never counts them done.
    async with process(pg_url) as a:
        await a.add(on("h", 2))
        got = await a.claim(10, NOW)
        for request in got:
            await a.record(Completion(request.id, 200, items=['"x"']))
        with reply_lost(a) as happened:
            await a.flush()
        assert happened
        assert rows(postgres, pg_url, "SELECT count(*) FROM S.items") == "2"  # once
        assert (await a.counts()).done == 2
        assert a.sharing.fenced == 0
        assert a.tally().done == 2


async def test_a_process_starting_during_another_ones_outage_waits_for_its_lease(
        pg_url: str, postgres: pg.Cluster) -> None:
    # FAILED BEFORE THE FIX. a's connection drops (a network blip, a server
    # restart): its run's lock is gone with it. b starts, takes a for killed, sets a's
    # host leases to run out at once and takes them. But a is alive: it keeps sending to
    # its hosts from what it had claimed until its next renewal (up to lease/3, 10 s by
    # default) or its abandon (0.8 of a lease). Two processes send to one host; b's gate
    # waits one delay, a's sends are not in the database at all.
    async with process(pg_url) as a:
        await a.add(on("h", 4))
        first = await a.claim(2, NOW)  # a sends these now, and the next two soon
        assert len(first) == 2 and a.sharing.held == frozenset({"h"})
        cut(postgres, a)  # a does not know yet: its lease, renewed now, has 30 s to run
        async with process(pg_url) as b:
            taken = await b.claim(10, NOW + 60)
            assert taken == [], "b holds a host whose lease a renewed moments ago"


class HalfCut:
    """A relay on 127.0.0.1 whose cut resets the client's side only: the server's side stays
    open and silent, as after a network partition or a NAT/firewall that forgot the
    connection (the server learns nothing until its TCP keepalive, two hours by default)."""

    def __init__(self, target: int) -> None:
        self._target = target
        self._clients: set[asyncio.StreamWriter] = set()
        self._servers: list[asyncio.StreamWriter] = []  # kept open, never closed by a cut
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._clients.add(writer)
        self._servers.append(up_writer)
        with contextlib.suppress(asyncio.CancelledError):  # the test's loop ending
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer),
                                 return_exceptions=True)

    def cut(self) -> None:
        for writer in list(self._clients):
            writer.transport.abort()
        self._clients.clear()

    def close(self) -> None:
        for writer in self._servers:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            if writer.transport.is_closing():
                return  # the other side was cut: stay silent, keep nothing moving
            writer.write(data)
            await writer.drain()


async def test_a_connection_cut_on_our_side_only_does_not_block_on_the_runs_lock(
        postgres: pg.Cluster) -> None:
    # FAILED BEFORE THE FIX. The old connection's server process outlives the cut (it has not
    # heard of it) and still holds the run's advisory lock (a session lock). The new
    # connection's revive waits for that lock: COMMAND_TIMEOUT (60 s) per attempt, again and
    # again, until `?reconnect=` gives up and the crawl dies -- with the server up all along.
    relay = HalfCut(postgres.port)
    await relay.start()
    try:
        url = (postgres.url_for(pg.crawl_name()).replace(f":{postgres.port}/",
                                                        f":{relay.port}/") + "&reconnect=30")
        async with process(url) as a:
            await a.add(on("h", 2))
            got = await a.claim(1, NOW)
            assert len(got) == 1
            relay.cut()
            await asyncio.wait_for(a.add(on("k", 1)), 10)  # connected again, or hung
            assert a._transactions.reconnects == 1
            await a.record(Completion(got[0].id, 200))
            await a.flush()
            assert a.sharing.fenced == 0 and (await a.counts()).done == 1
    finally:
        relay.close()


async def test_the_tally_holds_when_a_let_go_is_rolled_back(pg_url: str,
                                                             postgres: pg.Cluster) -> None:
    # FAILED BEFORE THE FIX. Letting go of what abandon() gave up moved the tally (leased ->
    # queued) at once, inside a transaction that may not commit; run again (on the new
    # connection, by revive, then by the work itself) it moved it again: the live display
    # and progress lines showed -2 leased, 4 queued of a crawl of 2 requests.
    async with process(pg_url) as a:
        await a.add(on("h", 2))
        assert len(await a.claim(10, NOW)) == 2
        a.abandon()
        with reply_lost(a, committed=False) as happened:
            await a.renew()
        assert happened
        assert rows(postgres, pg_url, "SELECT count(*) FROM S.requests WHERE state = 0") == "2"
        tally = a.tally()
        assert (tally.queued, tally.leased) == (2, 0)


async def test_fresh_is_refused_while_another_process_is_only_disconnected(
        pg_url: str, postgres: pg.Cluster) -> None:
    # FAILED BEFORE THE FIX. A run is "live" only while its connection holds its
    # lock: during a server restart or a network blip, every process is "dead", and
    # `crawl site --fresh` TRUNCATEs the crawl (RESTART IDENTITY) under them. Their run ids
    # and request ids are then reused by the new crawl: the old process's revive waits on
    # the new run's lock (same id), and its outcomes name ids that are other URLs now.
    async with process(pg_url) as a:
        await a.add(on("h", 2))
        assert len(await a.claim(10, NOW)) == 2
        cut(postgres, a)  # a is alive; it reconnects with its next statement
        b = await open_store(pg_url)
        try:
            with pytest.raises(StateLocked):
                await b.open_crawl("spider", "{}", fresh=True)
        finally:
            await b.close()


async def test_a_process_gone_mid_commit_does_not_stall_the_others_past_their_lease(
        pg_url: str) -> None:
    # FAILED BEFORE THE FIX. A process cut off (or stopped) in the middle of a group commit with
    # items leaves its server process idle in a transaction that holds the crawl's item
    # lock, until idle_in_transaction_session_timeout: 60 s. Every other process's group
    # commit with items waits on that lock, holding its session: its renewals wait behind
    # it, and at 0.8 of a 30 s lease every process abandons every host it holds.
    async with process(pg_url) as a:
        await a.add(on("h", 1))
        (request,) = await a.claim(1, NOW)
        location = Location.parse(pg_url)
        gone = await connect(location, readonly=False)  # as a crawl process connects
        try:
            await gone.execute("SELECT set_config('search_path', $1, false)",
                               quoted(a._schema))
            await gone.execute("BEGIN")
            await gone.execute(_ITEMS_IN_ORDER, a._schema)  # then nothing: it is gone
            await a.record(Completion(request.id, 200, items=['"x"']))
            await asyncio.wait_for(a.flush(), location.lease * ABANDON_AT)
        finally:
            gone.terminate()


class Busy(Stand):
    """A store whose hand_back waits for its connection (other transactions ahead) before it
    reads the gaps it was given, as the PostgreSQL store's transaction does."""

    def __init__(self, held: set[str]) -> None:
        super().__init__(held)
        self.waiting = asyncio.Event()
        self.go = asyncio.Event()
        self.read = asyncio.Event()
        self.gaps: dict[str, float] | None = None

    async def hand_back(self, gaps: Gaps, *,
                        delays: Mapping[str, float] | None = None) -> None:
        if self.gaps is None:
            self.waiting.set()
            await self.go.wait()
            self.gaps = dict(gaps() if callable(gaps) else gaps)  # as the store reads them
            self.read.set()


async def test_a_host_handed_back_keeps_the_gap_of_a_request_sent_while_waiting() -> None:
    # FAILED BEFORE THE FIX. HostShare read the frontier's clocks when it called hand_back(), not
    # when the store's transaction ran: a request that started and ended while the
    # hand-back waited for the connection (its outcome applied in that same transaction,
    # so the host looked idle) left no gap: the host went back with its gate open, and
    # another process could send to it right after ours (politeness across processes).
    frontier: Frontier[Work] = Frontier(per_host=2, delay=5.0)
    stand = Busy({"a.test"})
    share = HostShare(cast(Store, stand), frontier, changed=lambda: None)
    task = asyncio.create_task(share.keep())
    try:
        await asyncio.wait_for(stand.waiting.wait(), 5)  # the hand-back waits its turn
        frontier.push("a.test:80", cast(Work, object()))
        assert frontier.pop() is not None  # sent now: the host's next start is 5 s away
        frontier.release("a.test:80")  # ended (its outcome waits for the next commit)
        stand.go.set()
        await asyncio.wait_for(stand.read.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert stand.gaps is not None and stand.gaps.get("a.test", 0.0) > 4.0, stand.gaps


async def test_a_run_that_ends_holding_busy_hosts_leaves_them_their_delay(
        pg_url: str) -> None:
    # FAILED BEFORE THE FIX. A process stopped (interrupted, page limit) hands its idle hosts back
    # with their gaps, but those with requests still leased to it (jobs left in its
    # frontier, requests cut in flight) go back at finish_run with no gap at all: their
    # gate is what it was when the run took them. Another process takes one and sends at
    # once, right after this one's last request (politeness across processes).
    async with process(pg_url) as a, process(pg_url) as b:
        a.plan(16, delay=5.0)
        b.plan(16, delay=5.0)
        await a.add(on("h", 3))
        sent = await a.claim(10, NOW)  # the first goes out now, the others wait here
        assert len(sent) == 3 and sent[0].wait == 0.0
        await a.record(Completion(sent[0].id, 200))
        await a.finish_run("interrupted")  # the two left are a's still
        taken = await b.claim(10, NOW)
        assert len(taken) == 2
        assert taken[0].wait > 4.0, "the host's gate was left open"


async def test_a_claim_run_again_after_a_deadlock_holds_only_what_it_took(
        pg_url: str) -> None:
    # FAILED BEFORE THE FIX. The server aborts a claim's transaction (a deadlock: the request rows
    # a takeover resets against a group commit waiting on the item lock) after its host
    # leases were taken: they are rolled back, but HostLeases kept them as held. Run again,
    # the claim had no room for hosts (`want` counted the phantom) and claimed under a
    # token the database never kept: nothing, until a renewal dropped the phantom (a third
    # of a lease later), while next_due said work was due.
    async with process(pg_url, hosts=1) as a:
        await a.add(on("h", 2))
        leases = a.sharing.leases
        original = leases.claim
        failed: list[int] = []

        async def claim(run: int, ahead: float, limit: int) -> list[asyncpg.Record]:
            if not failed:
                failed.append(1)
                raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
            return await original(run, ahead, limit)

        leases.claim = claim  # type: ignore[method-assign]
        got = await a.claim(10, NOW)
        assert failed
        assert len(got) == 2, "the host is held in name only"


async def test_a_run_whose_finish_reply_was_lost_stays_finished(
        pg_url: str, postgres: pg.Cluster) -> None:
    # The connection broke as finish_run's COMMIT went through: the revive on the new
    # connection must not take the finished run for one another process marked crashed and
    # make it "running" again (the next process would then call it crashed).
    async with process(pg_url) as a:
        await a.add(on("h", 1))
        (request,) = await a.claim(1, NOW)
        await a.record(Completion(request.id, 200))
        with reply_lost(a) as happened:
            await a.finish_run("finished")
        assert happened
    assert rows(postgres, pg_url, "SELECT status FROM S.runs") == "finished"
