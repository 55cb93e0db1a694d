from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from ebr import health, views
from qms import views as qms_views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("login/", qms_views.LoginView.as_view(), name="login"),
    path("logout/", qms_views.logout_view, name="logout"),
    path("users/", qms_views.user_list, name="user_list"),
    path("users/<int:pk>/<str:action>/", qms_views.user_action, name="user_action"),
    path("audit/", qms_views.audit_trail, name="audit_trail"),
    path("audit/export.csv", qms_views.audit_trail_csv, name="audit_trail_csv"),
    path("audit/record/<str:target_type>/<str:target_id>/", qms_views.record_history_view,
         name="record_history"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api_docs"),
    path("admin/", admin.site.urls),
]
