"""The pure core of dockpool: specs, configuration and the per-container state machine.

Nothing in this package performs I/O or imports docker, blinker, watchfiles, loguru,
threading or asyncio (an import-linter contract in CI keeps it so), which is what lets the
state machine be tested exhaustively with plain tables.
"""
