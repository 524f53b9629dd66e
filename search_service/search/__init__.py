"""The search: the read path's steps, one module each (lookup → votes → exact matches →
verification → ranking; searching.py tells them in order). It reads the index only through
its read-only view (index/view.py, index/segment.py, index/images.py) and writes nothing."""
