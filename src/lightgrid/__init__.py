"""lightgrid: run a supercomputing center as a service, and join centers into a network."""

__version__ = "0.1.0"
