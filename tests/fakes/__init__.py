"""Fakes of the outside services gradeflow talks to, reachable over loopback."""
