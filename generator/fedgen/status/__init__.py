"""`fedgen status`: is the federation applied, synced, rolled out and connected? (see collect.py)"""

from fedgen.status.collect import check_federation, server_address
from fedgen.status.model import Check, ClusterStatus, Problem, StatusReport
from fedgen.status.report import FORMATS

__all__ = ["FORMATS", "Check", "ClusterStatus", "Problem", "StatusReport", "check_federation", "server_address"]
