"""The sections of docs/benchmarks.md and the README's generated table, one subject a module.

benchmarks/tables.py puts them in order and imports them as `sections`: running a script puts
its folder, benchmarks/, on sys.path."""
