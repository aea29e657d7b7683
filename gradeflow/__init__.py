"""gradeflow: asynchronous assessment grading on Postgres-owned jobs and Dramatiq workers."""
