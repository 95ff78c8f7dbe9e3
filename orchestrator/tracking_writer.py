"""A background thread that replays journal entries to MLflow in batches, retrying outages."""

from __future__ import annotations

import logging
import queue
import threading
import time

from orchestrator.journal import Entry, Journal
from orchestrator.mlflow_sink import MlflowSink, server_reachable

logger = logging.getLogger(__name__)

#: Entries a write that the server refuses (while answering) is retried before it is skipped.
REJECT_AFTER = 3


class BackgroundWriter:
    """Sends journal entries to ``sink`` off the caller's thread.

    ``submit`` only enqueues. The thread takes up to ``batch_size`` entries at a
    time (waiting ``linger_s`` for more), writes them, and records in the journal
    what MLflow accepted. While the server is unreachable it keeps the entries and
    retries with exponential backoff (up to ``max_backoff_s``); an entry the
    server keeps refusing while reachable is marked rejected with its cause.
    """

    def __init__(self, *, sink: MlflowSink, journal: Journal, batch_size: int = 64,
                 linger_s: float = 0.2, max_backoff_s: float = 10.0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if linger_s < 0 or max_backoff_s <= 0:
            raise ValueError(f"linger_s must be >= 0 and max_backoff_s > 0, got {linger_s}, "
                             f"{max_backoff_s}")
        self.sink = sink
        self.journal = journal
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.max_backoff_s = max_backoff_s
        self.last_error: str | None = None
        self._queue: queue.Queue[Entry] = queue.Queue()
        self._pending: list[Entry] = []
        self._idle = threading.Condition()
        self._outstanding = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="paretonas-mlflow-writer",
                                        daemon=True)
        self._thread.start()

    @property
    def outstanding(self) -> int:
        """Entries submitted and not yet accepted (or rejected) by MLflow."""
        with self._idle:
            return self._outstanding

    def submit(self, entry: Entry) -> None:
        with self._idle:
            self._outstanding += 1
        self._queue.put(entry)

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every submitted entry to reach MLflow."""
        self._wake.set()  # skip a backoff wait: try now
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._outstanding:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.5))
        return True

    def close(self, timeout_s: float) -> int:
        """Flush for up to ``timeout_s``, stop the thread; return the entries left unsent."""
        self.flush(timeout_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=max(timeout_s, 1.0) + 30)
        return self.outstanding

    def _loop(self) -> None:
        backoff = 0.5
        failures = 0
        while not self._stop.is_set():
            self._take()
            if not self._pending:
                continue
            try:
                for done in self.sink.apply(self._pending[: self.batch_size]):
                    self.journal.append({"kind": "synced", "seqs": done})
                    del self._pending[: len(done)]
                    self._settled(len(done))
                    failures, backoff = 0, 0.5
                self.last_error = None
            except Exception as error:  # an outage or a refused write: keep the entry, decide below
                failures += 1
                self.last_error = f"{type(error).__name__}: {error}"
                if failures >= REJECT_AFTER and server_reachable(self.sink.uri) is None:
                    self._reject(self._pending.pop(0), self.last_error)
                    failures = 0
                    continue
                logger.warning("MLflow write failed (%s); %d entries kept in %s, retrying in %.1f s",
                               self.last_error, len(self._pending), self.journal.path, backoff)
                self._wake.clear()
                self._wake.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def _take(self) -> None:
        """Move queued entries to the pending list (wait a little for the first ones)."""
        if not self._pending:
            try:
                self._pending.append(self._queue.get(timeout=0.5))
            except queue.Empty:
                return
            deadline = time.monotonic() + self.linger_s
            while len(self._pending) < self.batch_size:
                try:
                    self._pending.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0)))
                except queue.Empty:
                    break
        while True:
            try:
                self._pending.append(self._queue.get_nowait())
            except queue.Empty:
                return

    def _reject(self, entry: Entry, cause: str) -> None:
        logger.error("MLflow refused journal entry %d (%s) three times: %s; skipped (it stays in %s)",
                     entry["seq"], entry["kind"], cause, self.journal.path)
        self.journal.append({"kind": "rejected", "seqs": [entry["seq"]], "error": cause})
        self._settled(1)

    def _settled(self, count: int) -> None:
        with self._idle:
            self._outstanding -= count
            self._idle.notify_all()
