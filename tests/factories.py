"""Users in each role, for the web, admin and API tests."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission, User

from jobs.roles import sync_roles


def user_in(role: str, username: str | None = None) -> User:
    # Transactional tests flush the tables, migration-made groups included.
    sync_roles(Group, Permission)
    user = User.objects.create_user(username or role.lower(), password="pw-12345-xyz")
    user.groups.add(Group.objects.get(name=role))
    return user
