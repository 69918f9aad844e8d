"""`fedgen status`: is the federation applied, synced, rolled out and connected? (see collect.py; the report's
text and JSON forms are in fedgen.report.status)"""

from fedgen.status.collect import check_federation, server_address
from fedgen.status.model import Check, ClusterStatus, Problem, StatusReport

__all__ = ["Check", "ClusterStatus", "Problem", "StatusReport", "check_federation", "server_address"]
