"""Serializer fields the API's input shapes share."""

from rest_framework import serializers


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false`` only. DRF's BooleanField also takes ``0``, ``1``, ``"yes"``,
    ``"off"`` and the like, which the OpenAPI schema (``type: boolean``) says are refused."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if data is True or data is False:
            return data
        self.fail("invalid")
