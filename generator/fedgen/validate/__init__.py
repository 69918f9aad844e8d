"""Offline validation of a rendered repository (fedgen validate)."""
