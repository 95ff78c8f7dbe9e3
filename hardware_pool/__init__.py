"""Hardware pool: targets as data, pinned Ray actors that compile and time candidates."""

from hardware_pool.errors import TargetUnavailableError
from hardware_pool.target import Target

__all__ = ["Target", "TargetUnavailableError"]
