"""Simulation: the movable clock, the meter of billable events, injectable faults."""
