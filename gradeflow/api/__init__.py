"""The HTTP intake API: ``create_app(settings)`` builds it (``gradeflow api`` serves it)."""
