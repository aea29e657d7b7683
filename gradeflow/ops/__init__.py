"""Operating gradeflow: the CLI, the dev stack, metrics, the dashboard, benchmarks."""
