"""Progress of a long data job in the log: items/s, MB/s and ETA every few seconds."""

import time

from absl import logging


class Progress:
    """Logs items/s, MB/s and ETA at most every `interval` seconds."""

    def __init__(
        self,
        name: str,
        total: float,
        unit: str,
        total_bytes: float = 0,
        interval: float = 5.0,
        enabled: bool = True,
    ):
        self.name, self.total, self.unit, self.total_bytes = name, total, unit, total_bytes
        self.interval = interval if enabled else float("inf")
        self.enabled = enabled
        self.count = self.bytes = 0
        self.start = self.last = time.perf_counter()

    def update(self, count: float, num_bytes: float = 0):
        self.count += count
        self.bytes += num_bytes
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            self._log(now)

    def _log(self, now):
        elapsed = max(now - self.start, 1e-9)
        rate = self.count / elapsed
        eta = (self.total - self.count) / rate if rate > 0 else float("inf")
        mbps = f", {self.bytes / elapsed / 1e6:.2f} MB/s" if self.total_bytes else ""
        logging.info(
            "%s: %d/%d %s (%.1f %s/s%s), elapsed %.1fs, ETA %.1fs",
            self.name,
            self.count,
            self.total,
            self.unit,
            rate,
            self.unit,
            mbps,
            elapsed,
            eta,
        )

    def done(self):
        if self.enabled:
            self._log(time.perf_counter())
