"""JSON API for organizations and their members (`/api/v1/`)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Membership, Organization, Role
from accounts.selectors import organization_list_for_user
from accounts.services import membership_remove, membership_role_change
from clawtrace_site.api import OrgScopedViewSet, StrictFieldsMixin


class OrganizationListApi(ListAPIView):
    """The signed-in user's organizations with their role in each (user-scoped, not org-scoped:
    it is the one list that spans the user's tenants)."""

    class OrganizationOutputSerializer(serializers.ModelSerializer):
        role = serializers.CharField()

        class Meta:
            model = Organization
            fields = ["slug", "name", "plan", "is_personal", "role", "created_at"]

    serializer_class = OrganizationOutputSerializer

    def get_queryset(self) -> QuerySet[Organization]:
        return organization_list_for_user(user=self.request.user)


class MembershipViewSet(OrgScopedViewSet):
    model = Membership
    lookup_url_kwarg = "membership_id"

    class MembershipOutputSerializer(serializers.ModelSerializer):
        email = serializers.EmailField(source="user.email")

        class Meta:
            model = Membership
            fields = ["id", "email", "role", "created_at"]

    class MembershipRoleInputSerializer(StrictFieldsMixin, serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices)

    serializer_class = MembershipOutputSerializer

    def filter_org_queryset(self, queryset: QuerySet[Membership]) -> QuerySet[Membership]:
        return queryset.select_related("user", "organization").order_by("id")

    def list(self, request: Request, org_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.MembershipOutputSerializer(page, many=True).data)

    def retrieve(self, request: Request, org_slug: str, membership_id: int) -> Response:
        return Response(self.MembershipOutputSerializer(self.get_object()).data)

    @extend_schema(request=MembershipRoleInputSerializer, responses=MembershipOutputSerializer)
    def partial_update(self, request: Request, org_slug: str, membership_id: int) -> Response:
        membership = self.get_object()
        serializer = self.MembershipRoleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = membership_role_change(
            actor=request.user, membership=membership, role=serializer.validated_data["role"]
        )
        return Response(self.MembershipOutputSerializer(membership).data)

    def destroy(self, request: Request, org_slug: str, membership_id: int) -> Response:
        membership_remove(actor=request.user, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
