"""The pure core: domain types and policies with no I/O.

Nothing in this package touches the database, the file system, processes or the
network; shells (store, backends, api, cli, sim) drive it.
"""
