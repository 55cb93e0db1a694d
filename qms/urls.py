"""Pages of the quality system, under /qms/ (included by ebr/urls.py)."""

from django.urls import path

from qms.ui import capa, change_control, dashboard, deviations, training

urlpatterns = [
    path("dashboard/", dashboard.dashboard, name="qa_dashboard"),
    path("notifications/", dashboard.notifications, name="notifications"),
    path("notifications/read-all/", dashboard.notifications_mark_all_read, name="notifications_read_all"),
    path("notifications/<int:pk>/read/", dashboard.notification_mark_read, name="notification_read"),
    path("deviations/", deviations.deviation_list_view, name="deviation_list"),
    path("deviations/new/", deviations.deviation_new, name="deviation_new"),
    path("deviations/<str:number>/", deviations.deviation_detail, name="deviation_detail"),
    path("deviations/<str:number>/<str:action>/", deviations.deviation_action, name="deviation_action"),
    path("capa/", capa.capa_list_view, name="capa_list"),
    path("capa/new/", capa.capa_new, name="capa_new"),
    path("capa/<str:number>/", capa.capa_detail, name="capa_detail"),
    path("capa/<str:number>/<str:action>/", capa.capa_action, name="capa_action"),
    path("capa/<str:number>/<str:action>/<int:item>/", capa.capa_action, name="capa_item_action"),
    path("change-control/", change_control.change_control_list_view, name="change_control_list"),
    path("change-control/new/", change_control.change_control_new, name="change_control_new"),
    path("change-control/<str:number>/", change_control.change_control_detail, name="change_control_detail"),
    path("change-control/<str:number>/<str:action>/", change_control.change_control_action,
         name="change_control_action"),
    path("change-control/<str:number>/<str:action>/<int:item>/", change_control.change_control_action,
         name="change_control_item_action"),
    path("training/", training.training_list_view, name="training_list"),
    path("training/new/", training.training_new, name="training_new"),
    path("training/matrix/", training.training_matrix_view, name="training_matrix"),
    path("training/expiring/", training.training_expiring_view, name="training_expiring"),
    path("training/<int:pk>/<str:action>/", training.training_action, name="training_action"),
]
