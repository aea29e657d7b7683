"""``python -m gradeflow`` is the ``gradeflow`` command."""

from gradeflow.ops.cli import main

main()
