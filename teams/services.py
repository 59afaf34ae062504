"""Writes about teams, memberships and API tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework.authtoken.models import Token

from config.errors import Refused
from teams.models import Membership, Role
from teams.selectors import is_last_coordinator

User = get_user_model()

LAST_COORDINATOR = "A team needs at least one coordinator; appoint another one first."


@transaction.atomic
def token_rotate(user: AbstractBaseUser) -> Token:
    """Replace the user's API token: the old one stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


def token_get_or_create(user: AbstractBaseUser) -> Token:
    token, _ = Token.objects.get_or_create(user=user)
    return token


def _refuse_losing_last_coordinator(membership: Membership) -> None:
    # A team without a coordinator can no longer manage itself through the API.
    if is_last_coordinator(membership, lock=True):
        raise Refused(LAST_COORDINATOR, code="last_coordinator")


@transaction.atomic
def membership_change_role(membership: Membership, role: str) -> Membership:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if role != Role.COORDINATOR:
        _refuse_losing_last_coordinator(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(membership: Membership) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _refuse_losing_last_coordinator(membership)
    membership.delete()
