"""dockpool's benchmarks: measured figures on the real engine, installed with dockpool.

`dockpool bench` (`dockpool.bench.main`) is the entry point; `python -m dockpool.bench.pool_metrics`
and `python -m dockpool.bench.reload_latency` run on their own. Every figure is printed, none
is asserted: timing depends on the machine and on whatever else the engine is doing. The plots
need matplotlib (the `dockpool[bench]` extra), imported only when a plot is drawn.
"""
