"""orchestrator: exactly-once bulk provisioning of Katapult virtual machines."""

from __future__ import annotations
