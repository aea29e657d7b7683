"""What each job is and does: states, retry decisions, and the job types' code."""
