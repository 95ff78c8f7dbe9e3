"""Append-only JSONL journal of everything a search reports to its tracker.

Every entry is written (and fsync'd) here before MLflow sees it, so the search's
results survive a tracking server that is down; ``paretonas sync`` replays the
entries MLflow has not acknowledged. Entries carry a sequence number; the
writer appends a ``synced`` entry naming the sequence numbers MLflow accepted.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.errors import TrackingError
from orchestrator.records import TrialRecord
from search_spaces import Architecture

JOURNAL_NAME = "tracking-journal.jsonl"
#: Entry kinds the tracker writes, in the order a search writes them.
KINDS = ("search", "trial", "front", "finish", "end", "synced", "rejected")

Entry = dict[str, Any]


class Journal:
    """The journal of one output directory; safe to append from several threads."""

    def __init__(self, *, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir).resolve()
        self.path = self.output_dir / JOURNAL_NAME
        self._lock = threading.Lock()
        self._next_seq: int | None = None

    def append(self, entry: Entry) -> Entry:
        """Write ``entry`` (plus its sequence number) durably; return it as written."""
        if entry.get("kind") not in KINDS:
            raise TrackingError(f"journal entry kind {entry.get('kind')!r} is not one of {KINDS}")
        with self._lock:
            if self._next_seq is None:
                self._next_seq = sum(1 for _ in self._lines())
            written = {**entry, "seq": self._next_seq}
            line = json.dumps(written, sort_keys=True, allow_nan=True) + "\n"
            try:
                self.output_dir.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(line)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as error:
                raise TrackingError(f"cannot write the tracking journal {self.path}: "
                                    f"{error.strerror}; check the output directory") from None
            self._next_seq += 1
            return written

    def entries(self) -> list[Entry]:
        """Every entry in order; a torn last line (a crash mid-write) is ignored."""
        with self._lock:
            lines = list(self._lines())
        out = []
        for number, line in enumerate(lines):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if number != len(lines) - 1:
                    raise TrackingError(f"{self.path}:{number + 1}: not a JSON line; the journal "
                                        f"is damaged") from None
        return out

    def unsynced(self) -> list[Entry]:
        """Entries MLflow has neither accepted nor rejected, in order."""
        entries = self.entries()
        done: set[int] = set()
        for entry in entries:
            if entry["kind"] in ("synced", "rejected"):
                done.update(entry["seqs"])
        return [e for e in entries if e["kind"] not in ("synced", "rejected") and e["seq"] not in done]

    def store_model(self, trial_id: str, name: str, source: str) -> str:
        """Copy a trial's ONNX file beside the journal; return its path relative to it."""
        relative = f"models/{_safe(trial_id)}/{_safe(name)}.onnx"
        target = self.output_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return relative

    def resolve(self, relative: str) -> Path:
        return self.output_dir / relative

    def _lines(self) -> Iterator[str]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield line


def trial_entry(search_id: str, record: TrialRecord, model: str | None) -> Entry:
    return {
        "kind": "trial", "search_id": search_id, "trial_id": record.trial_id,
        "space": record.arch.space, "arch": record.arch.as_dict(), "arch_key": record.arch.key,
        "status": record.status, "metrics": record.metrics, "error": record.error,
        "wall_seconds": record.wall_seconds, "started_at": record.started_at, "model": model,
    }


def record_from_entry(entry: Entry) -> TrialRecord:
    return TrialRecord(
        trial_id=entry["trial_id"], arch=Architecture.from_dict(entry["space"], entry["arch"]),
        status=entry["status"], metrics=dict(entry["metrics"]), error=entry["error"],
        wall_seconds=entry["wall_seconds"], started_at=entry["started_at"],
    )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
