"""Bundled model weights (package data): see restore.hub.BUNDLED."""
