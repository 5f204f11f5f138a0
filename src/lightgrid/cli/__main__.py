"""`python -m lightgrid.cli`."""

from lightgrid.cli.main import main

main()
