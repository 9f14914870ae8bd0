"""The sender's linking calls under `/api/v1/` (included by the root URLconf)."""

from django.urls import path

from devices import apis

urlpatterns = [
    path("device/code", apis.DeviceCodeApi.as_view(), name="device_code"),
    path("device/token", apis.DeviceTokenApi.as_view(), name="device_token"),
    path("devices/enroll", apis.DeviceEnrollApi.as_view(), name="device_enroll"),
    path("device", apis.DeviceSelfApi.as_view(), name="device_self"),
]
