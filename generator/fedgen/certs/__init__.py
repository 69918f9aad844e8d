"""The federation's certificates over time: when they expire (lifecycle.py), and no new root CA behind the
operator's back (rootguard.py)."""
