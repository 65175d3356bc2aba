"""Moving in and out: `gitexp import` from MLflow stores, `gitexp export` back (docs/migration.md).

Readers turn an MLflow store -- a database (`_sql.py`), an `mlruns/` directory (`_files.py`) or a
tracking server (`_server.py`) -- into neutral records (`_records.py`); the importer writes them
through the Client (`Client.put_runs` for runs: one commit per batch, ids and times kept).
"""

from ._export import Exporter, export_store
from ._importer import Importer, ImportResult, import_store, open_source

__all__ = ["Exporter", "ImportResult", "export_store", "Importer", "import_store", "open_source"]
