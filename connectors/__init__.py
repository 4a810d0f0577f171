"""Connectors: one module or package per kind of account (see ``connectors.base``)."""
