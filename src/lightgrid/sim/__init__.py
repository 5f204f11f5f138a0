"""The simulator: the shell around `lightgrid.core.scheduling` that reads traces,
replays them event by event, and reports (see docs/simulation.md)."""
