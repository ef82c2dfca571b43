import math

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from apps.accounts.forms import SignInForm, TokenCreateForm
from apps.accounts.selectors import SignInLock, sign_in_lock_get, token_list
from apps.accounts.services import sign_in_failure_record, sign_in_success_record, token_create, token_revoke
from apps.common import ratelimit
from apps.common.exceptions import ApplicationError
from apps.common.middleware import client_ip
from apps.common.views import raise_for_http


def _locked_message(lock: SignInLock, now: float) -> str:
    minutes = math.ceil(lock.retry_after(now) / 60)
    return ngettext(
        "Too many failed sign-in attempts. Try again in %(minutes)d minute.",
        "Too many failed sign-in attempts. Try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}


class SignInView(auth_views.LoginView):
    """Password sign-in, throttled: after too many failed attempts for a username or from an address,
    attempts are refused (429, with Retry-After) without checking the password, until the lock ends."""

    template_name = "accounts/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        username = str(request.POST.get("username", ""))
        lock = sign_in_lock_get(username=username, ip=client_ip(request))
        if lock is None:
            return super().post(request, *args, **kwargs)
        now = ratelimit.clock()
        messages.error(request, _locked_message(lock, now))
        form = self.get_form_class()(request, initial={"username": username})  # unbound: nothing checked
        response = self.render_to_response(self.get_context_data(form=form))
        response.status_code = 429
        response["Retry-After"] = str(lock.retry_after(now))
        return response

    def form_invalid(self, form):
        username = str(form.data.get("username", ""))
        if username and form.data.get("password"):  # an attempt that was checked and refused
            lock = sign_in_failure_record(username=username, ip=client_ip(self.request))
            if lock is not None:
                messages.error(self.request, _locked_message(lock, ratelimit.clock()))
        return super().form_invalid(form)

    def form_valid(self, form):
        sign_in_success_record(username=form.get_user().get_username())
        return super().form_valid(form)


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
