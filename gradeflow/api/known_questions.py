"""The questions intake has already read, kept for the API process's lifetime.

A question's row is never edited (a new version is a new row), so what intake
checks an answer against (type, rubric, choices, weight, version) is the same
whenever it is read: intake reads each question once, parses its rubric once,
and checks later answers against that. Only ``active`` (of the question and of
its role) can change; the intake's write checks it again in the same statement
(:class:`gradeflow.db.assessments.NotWritten`), so a question retired since
it was read is refused, never snapshotted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from gradeflow.db.assessments import AskedQuestion
from gradeflow.jobs.rubrics import Rubric, parse_rubric

#: Beyond this many, the memory is emptied and filled again from what is asked.
MAX_KNOWN = 10_000


@dataclass(frozen=True)
class KnownQuestion:
    question: AskedQuestion
    rubric: Rubric
    #: The ids of a multiple-choice question's choices, else None.
    choice_ids: list[str] | None

    @classmethod
    def of(cls, question: AskedQuestion) -> KnownQuestion:
        choice_ids = [c["id"] for c in question.choices] if question.choices else None
        return cls(question, parse_rubric(question.question_type, question.rubric), choice_ids)


class KnownQuestions:
    """Questions by (role, id), as an active question of that role was once read."""

    def __init__(self, max_known: int = MAX_KNOWN) -> None:
        self._max_known = max_known
        self._known: dict[tuple[uuid.UUID, uuid.UUID], KnownQuestion] = {}

    def of_role(
        self, role_id: uuid.UUID, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, KnownQuestion]:
        """Those of ``ids`` already read as questions of ``role_id``, by id."""
        known = {}
        for question_id in ids:
            found = self._known.get((role_id, question_id))
            if found is not None:
                known[question_id] = found
        return known

    def learn(
        self, role_id: uuid.UUID, questions: Iterable[AskedQuestion]
    ) -> dict[uuid.UUID, KnownQuestion]:
        """Remember ``questions``, just read as active questions of ``role_id``."""
        learned = {q.id: KnownQuestion.of(q) for q in questions}
        if len(self._known) + len(learned) > self._max_known:
            self._known.clear()
        self._known.update({(role_id, qid): known for qid, known in learned.items()})
        return learned

    def forget_role(self, role_id: uuid.UUID) -> None:
        """Drop every question of ``role_id``: one of them (or the role) was retired."""
        for key in list(self._known):
            if key[0] == role_id:
                self._known.pop(key, None)
