"""HTTP endpoints for reviewers (queue, votes, feedback), consortium admins (rulings, disputes,
incidents, policy) and every member (labels, incidents, an entry's decisions and feedback).

Views are thin: they check the capability, validate the input and call a service in
``federation.vetting.services``; the Django admin calls the same services.
"""

import uuid

from django.db.models import Exists, OuterRef
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from federation.api.pagination import StandardCursorPagination
from federation.contributions.models import Contribution, Entry
from federation.errors import InvalidInput, NotFound
from federation.vetting import selectors
from federation.vetting.models import Decision, Feedback, Incident, VettingPolicy
from federation.vetting.serializers import (
    DecisionSerializer,
    FeedbackInputSerializer,
    FeedbackSerializer,
    IncidentCloseSerializer,
    IncidentDeclareSerializer,
    IncidentSerializer,
    LabelSerializer,
    QueueEntrySerializer,
    ReasonSerializer,
    RequiredReasonSerializer,
    ResolveSerializer,
    VettingPolicySerializer,
    VoteResultSerializer,
)
from federation.vetting.services import (
    VoteOutcome,
    entry_resolve_dispute,
    entry_rule,
    entry_vote,
    feedback_set,
    incident_close,
    incident_declare,
    vetting_policy_update,
)
from members.actors import Actor
from members.models import Scope
from members.permissions import HasCapability, IsAuthenticatedPrincipal
from members.principals import principal_for_request


class OldestFirstCursorPagination(StandardCursorPagination):
    ordering = "id"


class HasAnyCapability(IsAuthenticatedPrincipal):
    """Requires one of ``view.any_capability`` (the view then acts according to which)."""

    message = "Your role or token scopes do not allow this."

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method not in view.allowed_methods:
            return True  # let the view answer 405 rather than a misleading 403
        principal = principal_for_request(request)
        return any(principal.can(capability) for capability in view.any_capability)


class ReviewQueueView(generics.ListAPIView):
    """Pending entries your organisation may vote on (oldest first): not contributed by it and not
    yet voted on by it in their current review round. ``?incident=<id>`` narrows to one incident."""

    permission_classes = [HasCapability]
    required_capability = Scope.REVIEW
    serializer_class = QueueEntrySerializer
    query_error_codes = True  # ?incident= must be a UUID
    pagination_class = OldestFirstCursorPagination

    def get_queryset(self):
        queryset = selectors.review_queue(
            organisation=principal_for_request(self.request).organisation
        )
        incident = self.request.query_params.get("incident")
        if incident:
            try:
                incident_id = uuid.UUID(incident)
            except ValueError as exc:
                raise InvalidInput("incident must be an incident id (a UUID).") from exc
            queryset = queryset.filter(
                Exists(
                    Contribution.objects.filter(
                        entry_id=OuterRef("pk"),
                        incident_id=incident_id,
                        status=Contribution.Status.ACTIVE,
                    )
                )
            )
        return queryset


class _VoteView(APIView):
    """Reviewers vote for their organisation; consortium admins rule on the entry directly."""

    permission_classes = [HasAnyCapability]
    any_capability = (Scope.REVIEW, Scope.HUB_ADMIN)
    verdict: str = ""
    error_codes = {
        400: ["reason_required"],
        403: ["self_vote"],
        409: ["not_pending", "already_voted"],
    }

    @extend_schema(request=ReasonSerializer, responses={200: VoteResultSerializer})
    def post(self, request, pk: int):
        principal = principal_for_request(request)
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        reason = data.validated_data["reason"]
        if principal.can(Scope.REVIEW) and principal.organisation is not None:
            outcome = entry_vote(
                entry_id=pk,
                verdict=self.verdict,
                reason=reason,
                actor=Actor.for_principal(principal),
            )
        else:
            decision = entry_rule(
                entry_id=pk,
                verdict=self.verdict,
                reason=reason,
                actor=Actor.for_principal(principal),
            )
            decision.entry.refresh_from_db()
            outcome = VoteOutcome(decision=decision, entry=decision.entry)
        return Response(VoteResultSerializer(outcome).data)


class EntryApproveView(_VoteView):
    """Approve a pending entry (``reason`` optional)."""

    verdict = Decision.Verdict.APPROVE


class EntryRejectView(_VoteView):
    """Reject a pending entry (``reason`` required)."""

    verdict = Decision.Verdict.REJECT

    @extend_schema(request=RequiredReasonSerializer, responses={200: VoteResultSerializer})
    def post(self, request, pk: int):
        return super().post(request, pk)


class EntryResolveView(APIView):
    """End a dispute: ``confirm`` (the entry is vetted again) or ``reject``, with a reason."""

    permission_classes = [HasCapability]
    required_capability = Scope.HUB_ADMIN
    error_codes = {400: ["reason_required"], 409: ["not_disputed"]}

    @extend_schema(request=ResolveSerializer, responses={200: DecisionSerializer})
    def post(self, request, pk: int):
        principal = principal_for_request(request)
        data = ResolveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decision = entry_resolve_dispute(
            entry_id=pk,
            outcome=data.validated_data["outcome"],
            reason=data.validated_data["reason"],
            actor=Actor.for_principal(principal),
        )
        return Response(DecisionSerializer(decision).data)


def _existing_entry_id(pk: int) -> int:
    """An entry that does not exist is a 404, not an empty list."""
    if not Entry.objects.filter(pk=pk).exists():
        raise NotFound("No such entry.")
    return pk


class EntryDecisionListView(generics.ListAPIView):
    """Every vetting decision on an entry: who, when, why and which policy applied."""

    permission_classes = [HasCapability]
    required_capability = Scope.READ
    serializer_class = DecisionSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return Decision.objects.none()
        return selectors.decisions_for_entry(entry_id=_existing_entry_id(self.kwargs["pk"]))


class EntryFeedbackView(generics.ListAPIView):
    """Members' feedback on an entry (GET, visible to every member); PUT sets your
    organisation's current opinion (``agree``, ``disagree``, ``false_positive``, optional note)."""

    permission_classes = [HasCapability]
    required_capabilities = {"GET": Scope.READ, "PUT": Scope.REVIEW}
    serializer_class = FeedbackSerializer
    error_codes = {"PUT": {403: ["own_entry"], 409: ["not_vetted"]}}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return Feedback.objects.none()
        return selectors.feedback_for_entry(entry_id=_existing_entry_id(self.kwargs["pk"]))

    @extend_schema(request=FeedbackInputSerializer, responses={200: FeedbackSerializer})
    def put(self, request, pk: int):
        principal = principal_for_request(request)
        data = FeedbackInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        feedback = feedback_set(
            entry_id=pk,
            opinion=data.validated_data["opinion"],
            note=data.validated_data["note"],
            actor=Actor.for_principal(principal),
        )
        return Response(FeedbackSerializer(feedback).data)


class LabelListView(generics.ListAPIView):
    """The hub's label taxonomy; only active labels may be used in new contributions."""

    permission_classes = [HasCapability]
    required_capability = Scope.READ
    serializer_class = LabelSerializer
    pagination_class = None

    def get_queryset(self):
        return selectors.labels_all()


class IncidentListCreateView(generics.ListAPIView):
    """Incidents, newest first; POST declares one (consortium admins)."""

    permission_classes = [HasCapability]
    required_capabilities = {"GET": Scope.READ, "POST": Scope.HUB_ADMIN}
    serializer_class = IncidentSerializer
    pagination_class = None

    def get_queryset(self):
        return selectors.incidents_all()

    @extend_schema(request=IncidentDeclareSerializer, responses={201: IncidentSerializer})
    def post(self, request):
        principal = principal_for_request(request)
        data = IncidentDeclareSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        incident = incident_declare(**data.validated_data, actor=Actor.for_principal(principal))
        return Response(IncidentSerializer(incident).data, status=status.HTTP_201_CREATED)


class IncidentDetailView(generics.RetrieveAPIView):
    """One incident."""

    permission_classes = [HasCapability]
    required_capability = Scope.READ
    serializer_class = IncidentSerializer

    def get_object(self):
        incident = Incident.objects.filter(pk=self.kwargs["pk"]).first()
        if incident is None:
            raise NotFound("No such incident.")
        return incident


class IncidentCloseView(APIView):
    """Close an incident (now, or from ``ended_at``); its policy stops applying."""

    permission_classes = [HasCapability]
    required_capability = Scope.HUB_ADMIN
    error_codes = {409: ["incident_closed"]}

    @extend_schema(request=IncidentCloseSerializer, responses={200: IncidentSerializer})
    def post(self, request, pk):
        data = IncidentCloseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        incident = incident_close(
            incident_id=pk,
            ended_at=data.validated_data["ended_at"],
            actor=Actor.for_principal(principal_for_request(request)),
        )
        return Response(IncidentSerializer(incident).data)


class VettingPolicyView(APIView):
    """The hub's vetting policy; PATCH changes it (consortium admins, audited)."""

    permission_classes = [HasCapability]
    required_capabilities = {"GET": Scope.READ, "PATCH": Scope.HUB_ADMIN}

    @extend_schema(responses={200: VettingPolicySerializer})
    def get(self, request):
        return Response(VettingPolicySerializer(VettingPolicy.current()).data)

    @extend_schema(request=VettingPolicySerializer, responses={200: VettingPolicySerializer})
    def patch(self, request):
        data = VettingPolicySerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        policy = vetting_policy_update(
            changes=dict(data.validated_data),
            actor=Actor.for_principal(principal_for_request(request)),
        )
        return Response(VettingPolicySerializer(policy).data)
