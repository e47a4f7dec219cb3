"""Cursor pagination with a bounded page size for every list endpoint."""

from rest_framework.pagination import CursorPagination

from federation.errors import InvalidInput


class StandardCursorPagination(CursorPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "-id"

    def get_page_size(self, request):
        """``?page_size=`` is a whole number of at least 1 (above the maximum it is capped);
        anything else is ``400 invalid``, where DRF would silently use the default."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        # Digits only (no sign, space or "1e3"); a long run of them is simply over the cap.
        if not raw.isascii() or not raw.isdigit() or not raw.strip("0"):
            raise InvalidInput(
                f"{self.page_size_query_param} must be a whole number of at least 1.",
                details={"parameter": self.page_size_query_param, "value": raw[:100]},
            )
        return min(int(raw.lstrip("0")[:20]), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Results per page: default {self.page_size}; above {self.max_page_size} "
                    "is capped."
                )
        return parameters
