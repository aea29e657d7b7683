"""What text stands for a catalog item when it is embedded."""

from __future__ import annotations

from typing import Any

from gradeflow.db.embeddings import CredentialForEmbedding, RoleForEmbedding


def credential_text(credential: CredentialForEmbedding) -> str:
    """Title, description and skills: what a learner would read to choose it."""
    parts = [credential.title.strip()]
    if credential.description and credential.description.strip():
        parts.append(credential.description.strip())
    if credential.skills:
        parts.append("Skills: " + ", ".join(credential.skills))
    return "\n".join(parts)


def role_text(role: RoleForEmbedding) -> str:
    """Name, description and the profile's skills, most important first."""
    parts = [role.name.strip()]
    if role.description and role.description.strip():
        parts.append(role.description.strip())
    skills = ranked_skills(role.skills_profile)
    if skills:
        parts.append("Skills: " + ", ".join(skills))
    return "\n".join(parts)


def ranked_skills(profile: dict[str, Any]) -> list[str]:
    """Skill names by descending weight (ties by name); non-numeric weights count as 0."""

    def weight(item: tuple[str, Any]) -> float:
        value = item[1]
        return float(value) if isinstance(value, int | float) else 0.0

    return [name for name, _ in sorted(profile.items(), key=lambda i: (-weight(i), i[0]))]
