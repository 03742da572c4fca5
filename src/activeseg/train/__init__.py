"""Supervised training and evaluation; nothing here knows about active learning."""
