from django.urls import path

from apps.workflows import views, views_policies

app_name = "workflows"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("<int:request_id>/", views.request_detail, name="request"),
    path("<int:request_id>/decide/", views.decide, name="decide"),
    path("<int:request_id>/withdraw/", views.withdraw, name="withdraw"),
    path("policies/", views_policies.policy_list, name="policies"),
    path("policies/<slug:team>/<slug:kind>/", views_policies.policy_edit, name="policy_edit"),
]
