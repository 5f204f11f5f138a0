"""The `lightgrid` command line (Typer + Rich)."""
