"""Lifecycle and retention: the garbage collector of a store (gc.py) and the removal of one user's events (forget.py).

Both sit above publish (they read manifests the way rollback does) and below the pipeline, whose steps run them
under the tenant/surface's run lease.
"""
