"""Probes and scrapes answered before Django's Host check.

The kubelet's HTTP probes and an in-cluster Prometheus reach a pod by its IP address, so their `Host`
header is that address (`10.1.2.3:8000`), which is not (and should not be) in ALLOWED_HOSTS: Django would
answer 400 from CommonMiddleware's `request.get_host()`. `ProbeMiddleware` sits before SecurityMiddleware
and CommonMiddleware and answers exactly `GET`/`HEAD` of `/healthz`, `/readyz` and `/metrics` itself, without
reading the Host header; every other request, including any other path on a pod IP, still gets the Host
check (400). This is safe because these three views build no URL from the Host, set no cookie, are never
cached, and `/metrics` keeps its own access check (private network or token). It is what
django-lb-health-check and Sentry's HealthCheck middleware do, and it keeps the probes independent of
DJANGO_ALLOWED_HOSTS: a wrong value there cannot make every pod unready.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

PROBE_ROUTES = {"/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics"}


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        route = PROBE_ROUTES.get(request.path_info)
        if route is None or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:  # the routes are in console.urls
            return self.get_response(request)
        if match.view_name != route:  # a URLconf that moved them: no shortcut
            return self.get_response(request)
        request.resolver_match = match  # the route label of the latency histogram
        response = match.func(request, *match.args, **match.kwargs)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
