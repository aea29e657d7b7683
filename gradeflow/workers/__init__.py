"""Dramatiq wiring: the broker, one thin actor per job type, the execute path, maintenance."""
