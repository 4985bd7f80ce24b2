"""Deployment packages: a model with a standalone runner, pinned requirements, reports and lineage."""
