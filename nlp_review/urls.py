from django.urls import path

from nlp_review import views

urlpatterns = [
    path("", views.review_queue, name="review_queue"),
    path("monitoring/", views.review_monitoring, name="review_monitoring"),
    path("search/", views.record_search_page, name="record_search"),
    path("batches/<str:number>/", views.batch_review_page, name="batch_review"),
    path("batches/<str:number>/rerun/", views.review_rerun, name="review_rerun"),
    path("batches/<str:number>/flags/<int:pk>/disposition/", views.flag_disposition_submit,
         name="flag_disposition"),
]
