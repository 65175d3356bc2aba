"""Storage: the git object layer, the tracking branch, journals, the GitStore and RestStore.

interface.py: what both offer.
"""
