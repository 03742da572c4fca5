"""Datasets in the activeseg folder format, the CamVid preset and synthetic data."""
