"""The index: the write path and the storage (log → buffer → seal → merge → segments).

Searches read the store's View (view.py) and the segments it names (segment.py); nothing
in this package imports the search package. wiring.Index puts the parts together.
"""
