"""Connectors: one module or package per kind of account (see ``syncd_connectors.base``)."""
