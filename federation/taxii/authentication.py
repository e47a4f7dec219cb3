"""TAXII clients' HTTP Basic authentication: the member's API token as the password.

TAXII tools (taxii2-client, OpenCTI, MISP) ask for a user name and a password; the password is
checked exactly as a bearer token is (``ApiCredentialAuthentication.authenticate_token``), and the
user name is ignored: the token alone names its holder.
"""

import base64
import binascii

from rest_framework import authentication, exceptions

from members.authentication import ApiCredentialAuthentication


class BasicTokenAuthentication(ApiCredentialAuthentication):
    keyword = "Basic"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"basic":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send exactly: Authorization: Basic base64(<any user name>:<API token>)."
            )
        try:
            decoded = base64.b64decode(header[1], validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise exceptions.AuthenticationFailed(
                "The Basic credentials are not base64 ASCII."
            ) from exc
        _user, sep, token = decoded.partition(":")
        if not sep:
            raise exceptions.AuthenticationFailed("The Basic credentials have no password.")
        return self.authenticate_token(token)

    def authenticate_header(self, request):
        return 'Basic realm="concordat"'
