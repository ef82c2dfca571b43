from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.forms import SignInForm, TokenCreateForm
from apps.accounts.selectors import token_list
from apps.accounts.services import token_create, token_revoke
from apps.common.exceptions import ApplicationError
from apps.common.views import raise_for_http


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True


class SignOutView(auth_views.LogoutView):
    pass


# Sign-ins and sign-outs through the web pages are audited. Sessions opened without a browser
# request (the test client's force_login, say) did not go through the middleware and are not.


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """The user's tokens (and, for team administrators, their team's); create one. The plaintext
    is in the response to the creating POST only, and is never stored."""
    form = TokenCreateForm(request.POST or None, user=request.user)
    created = plaintext = None
    if request.method == "POST" and form.is_valid():
        try:
            created, plaintext = token_create(
                actor=request.user,
                user=request.user,
                team=form.cleaned_data["team"],
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.expires_at(),
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            form = TokenCreateForm(user=request.user)
    response = render(
        request,
        "accounts/tokens.html",
        {"form": form, "tokens": token_list(user=request.user), "created": created, "plaintext": plaintext},
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = token_revoke(actor=request.user, token_id=token_id)
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Token “%(name)s” revoked: it no longer works.") % {"name": token.name})
    return redirect("accounts:tokens")
