"""The benchmark and the load test (`pipeline.py bench`, `pipeline.py load`)."""
