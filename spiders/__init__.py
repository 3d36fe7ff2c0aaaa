"""Built-in and example spiders. They use only the public API of `crawler`."""
