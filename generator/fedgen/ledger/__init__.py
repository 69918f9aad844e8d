"""The ledgers: what fedgen records in a repo about what it rendered there, and which paths it may touch.

guard.py         which repo paths a render or remove may touch (for every path a ledger, plan or journal names)
contribution.py  what one federation feeds into the files it shares with others
record.py        the ledger format (.fedgen/owned/<federation>.json): writing it, parsing it, its entries' checks
read.py          reading a repo's ledgers (each as found, for validate; all checked, for render and remove)

Render makes contributions, write plans with the ledgers, validate and the root-CA guard read them: all
through this one format and parser. It imports nothing of theirs.
"""

from fedgen.ledger.contribution import Contribution
from fedgen.ledger.read import LedgerFile, read_ledger_files, read_ledgers
from fedgen.ledger.record import Ledger, ledger_bytes, ledger_path

__all__ = ["Contribution", "Ledger", "LedgerFile", "ledger_bytes", "ledger_path", "read_ledger_files", "read_ledgers"]
