"""Video signals: the vPDQ frame list (frames.py) and what is built on it."""
