"""Test data built through the services, so that audit chains and states are real."""

from dataclasses import dataclass, field
from typing import Any

import factory

from apps.accounts.models import Membership, Team, User
from apps.accounts.roles import Role
from apps.accounts.services import token_create
from apps.catalog.models import Prompt, PromptVersion
from apps.catalog.services import (
    prompt_create,
    prompt_label_set,
    prompt_version_create,
    prompt_version_submit,
)
from apps.workflows.services import approval_decision_record


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("demo-password")


def member(user: User, team: Team, *roles: str) -> User:
    for role in roles:
        Membership.objects.get_or_create(user=user, team=team, role=role)
    return user


@dataclass
class World:
    """The demo organisation: support and finance, one user per role (eng2 also in finance),
    plus `fin_eng` and `fin_gov` who belong to finance only (the "other team")."""

    support: Team
    finance: Team
    users: dict[str, User] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["users"][name]
        except KeyError:
            raise AttributeError(name) from None


ROLES_BY_USER = {
    "admin": Role.ADMIN,
    "gov": Role.GOVERNANCE,
    "gov2": Role.GOVERNANCE,
    "eng": Role.ENGINEER,
    "eng2": Role.ENGINEER,
    "owner": Role.PRODUCT_OWNER,
    "ann1": Role.ANNOTATOR,
    "ann2": Role.ANNOTATOR,
}


def make_world() -> World:
    support = TeamFactory(slug="support", name="Support")
    finance = TeamFactory(slug="finance", name="Finance")
    world = World(support=support, finance=finance)
    for username, role in ROLES_BY_USER.items():
        world.users[username] = member(UserFactory(username=username), support, role)
    member(world.users["eng2"], finance, Role.ENGINEER)
    world.users["fin_eng"] = member(UserFactory(username="fin_eng"), finance, Role.ENGINEER)
    world.users["fin_gov"] = member(UserFactory(username="fin_gov"), finance, Role.GOVERNANCE)
    return world


MESSAGES = [
    {"role": "system", "template": "You are the support assistant of {{ company }}."},
    {"role": "user", "template": "{{ question }}"},
]


def make_prompt(team: Team, author: User, name: str = "greeting", **kwargs: Any) -> Prompt:
    return prompt_create(
        actor=author,
        team=team,
        name=name,
        description=kwargs.get("description", ""),
        tags=kwargs.get("tags", []),
    )


def make_version(
    prompt: Prompt,
    author: User,
    messages: list | None = None,
    model: str = "gemini-2.5-flash",
    parameters: dict | None = None,
    message: str = "change",
) -> PromptVersion:
    return prompt_version_create(
        actor=author,
        prompt=prompt,
        messages=MESSAGES if messages is None else messages,
        model=model,
        parameters=parameters if parameters is not None else {"temperature": 0.2},
        message=message,
    )


def make_submitted(prompt: Prompt, author: User, **kwargs: Any) -> PromptVersion:
    version = make_version(prompt, author, **kwargs)
    prompt_version_submit(actor=author, version=version)
    version.refresh_from_db()
    return version


def make_approved(prompt: Prompt, author: User, reviewer: User, **kwargs: Any) -> PromptVersion:
    version = make_version(prompt, author, **kwargs)
    request = prompt_version_submit(actor=author, version=version)
    approval_decision_record(request_id=request.pk, reviewer=reviewer, decision="approve", comment="ok")
    version.refresh_from_db()
    return version


def put_on_label(prompt: Prompt, version: PromptVersion, label: str, actor: User) -> None:
    """Move a label as `actor` (a governance user moves protected labels directly)."""
    result = prompt_label_set(actor=actor, prompt=prompt, label=label, version_number=version.number)
    assert result.label is not None, "use a governance actor for protected labels"


def make_token(user: User, team: Team, *scopes: str) -> str:
    _, plaintext = token_create(actor=user, user=user, team=team, name="test", scopes=list(scopes) or ["all"])
    return plaintext
