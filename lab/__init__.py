"""Capture lab: rebuilds the test captures from real Kerberos exchanges on loopback.

Run ``python -m lab.build`` as root; see docs/lab.md.
"""
