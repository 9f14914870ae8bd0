from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("billing/", views.billing_current, name="current"),
    path("billing/stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
    path("o/<slug:org_slug>/billing/", views.billing_page, name="page"),
    path("o/<slug:org_slug>/billing/checkout/", views.checkout_start, name="checkout"),
    path("o/<slug:org_slug>/billing/success/", views.checkout_success, name="success"),
    path("o/<slug:org_slug>/billing/cancel/", views.checkout_cancel, name="cancel"),
]
