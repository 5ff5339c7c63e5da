"""dockpool's benchmarks: measured figures on the real engine with the stand-in image.

Run `python -m benchmarks.pool_metrics [--quick] [--json PATH]`. Every figure is printed, none is
asserted: timing depends on the machine and on whatever else the engine is doing.
"""
