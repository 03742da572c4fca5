"""A labelling project: the practitioner workflow on a user's own images (init, query, import, train, status)."""
