"""The pipeline itself: the stage table, its context and options, the stages, the report, clean-up, multi-
platform runs and the Deployment proof."""
