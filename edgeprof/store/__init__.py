"""The run database: ``Store`` (queries and writes), ``schema`` (tables and migrations), ``bundle`` (export and
import between devices)."""

from .schema import MIGRATIONS, SCHEMA_VERSION, TABLES
from .store import Store, device_id_for, local_owner_alive, new_run_id

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "TABLES", "Store", "device_id_for", "local_owner_alive", "new_run_id"]
