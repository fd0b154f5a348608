"""The ocitrace command line: glue between `analyzers` (the core) and `addons` (the live proxy)."""
