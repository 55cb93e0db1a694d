from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated

from ebr import health
from ebr.api import readings as readings_api
from ebr.views import batches, execution, exports, home, master, process_data
from qms import views as qms_views
from qms.forms import AdminLoginForm

urlpatterns = [
    path("", home.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("login/", qms_views.LoginView.as_view(), name="login"),
    path("logout/", qms_views.logout_view, name="logout"),
    path("account/password/", qms_views.password_change, name="password_change"),
    path("users/", qms_views.user_list, name="user_list"),
    path("users/<int:pk>/roles/", qms_views.user_roles, name="user_roles"),  # before the POST-only actions
    path("users/<int:pk>/password/", qms_views.user_password_reset, name="user_password_reset"),
    path("users/<int:pk>/<str:action>/", qms_views.user_action, name="user_action"),
    path("audit/", qms_views.audit_trail, name="audit_trail"),
    path("audit/export.csv", qms_views.audit_trail_csv, name="audit_trail_csv"),
    path("audit/record/<str:target_type>/<str:target_id>/", qms_views.record_history_view,
         name="record_history"),
    # manufacturing
    path("batches/", batches.batch_list, name="batch_list"),
    path("batches/new/", batches.batch_create, name="batch_create"),
    path("batches/<str:number>/", batches.batch_detail, name="batch_detail"),
    path("batches/<str:number>/custody/", batches.custody_add, name="custody_add"),
    path("batches/<str:number>/audit-trail/", batches.batch_audit_trail, name="batch_audit_trail"),
    path("batches/<str:number>/process-data/", process_data.process_data_fragment, name="process_data"),
    path("batches/<str:number>/alarms/", process_data.alarms_fragment, name="batch_alarms"),
    path("batches/<str:number>/alarms/<int:pk>/acknowledge/", process_data.alarm_acknowledge_submit,
         name="alarm_acknowledge"),
    path("batches/<str:number>/pdf/", exports.batch_pdf_panel, name="batch_pdf_panel"),
    path("batches/<str:number>/pdf/export/", exports.batch_pdf_request, name="batch_pdf_request"),
    path("batches/<str:number>/pdf/<int:pk>/download/", exports.batch_pdf_download, name="batch_pdf_download"),
    path("batches/<str:number>/<str:action>/", batches.batch_action, name="batch_action"),
    path("execute/", execution.execution_list, name="execution_list"),
    path("execute/<str:number>/", execution.step_page, name="step_page"),
    path("execute/<str:number>/steps/<int:step_pk>/values/<int:parameter_pk>/", execution.entry_submit,
         name="entry_submit"),
    path("execute/<str:number>/steps/<int:step_pk>/perform/", execution.step_perform_submit, name="step_perform"),
    path("execute/<str:number>/steps/<int:step_pk>/verify/", execution.step_verify_submit, name="step_verify"),
    path("master-records/", master.master_record_list, name="master_record_list"),
    path("master-records/images/<int:pk>/", master.instruction_image, name="instruction_image"),
    path("master-records/<str:code>/v<int:version>/", master.master_version_detail, name="master_version"),
    path("master-records/<str:code>/v<int:version>/<str:action>/", master.master_version_action,
         name="master_version_action"),
    path("master-records/<str:code>/diff/<int:old>/<int:new>/", master.master_version_diff, name="master_diff"),
    # quality system: deviations, CAPA, change control, training, QA dashboard
    path("qms/", include("qms.urls")),
    path("review/", include("nlp_review.urls")),
    # API
    path("api/v1/readings", readings_api.readings_post, name="api_readings"),
    path("api/v1/batches/<str:batch>/readings", readings_api.batch_readings, name="api_batch_readings"),
    # The published contract of the instrument API (specs/instrument-api.md): integrators and
    # their tools read it without a session, as the API is the only thing it describes.
    path("api/schema/", login_not_required(SpectacularAPIView.as_view()), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", permission_classes=[IsAuthenticated]),
         name="api_docs"),
    path("admin/", admin.site.urls),
]

# The admin's login page applies the site's login rules too (an expired temporary password, the same
# messages): every way in goes through LoginForm.confirm_login_allowed.
admin.site.login_form = AdminLoginForm
