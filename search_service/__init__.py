"""The search service: an Annoy index of database descriptors, neighbour voting and RANSAC."""
