"""Adapters: the only code that talks to Docker (docker-py) and watches files (watchfiles)."""
