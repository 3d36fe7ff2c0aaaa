"""The engine: the run's lifecycle and the glue between store, policies and fetcher."""
