"""Who may call what: reads are public, writes need a staff user (by session or by that user's token).

Token decision: any user may hold a token (``rest_framework.authtoken``), but a token only ever
carries its user's rights, so a non-staff user's token gets 403 on writes, like that user's session.
``manage.py create_api_token`` issues tokens to staff users only, since a token is for scripts that write.
"""

from __future__ import annotations

from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import BasePermission

from search.access import may_curate

# Token first: an anonymous caller of a protected endpoint gets 401 with `WWW-Authenticate: Token`.
API_AUTHENTICATION = [TokenAuthentication, SessionAuthentication]

STAFF_ONLY = "Staff only: log in as a staff user, or send a staff user's token (Authorization: Token <key>)."


class IsStaff(BasePermission):
    message = STAFF_ONLY

    def has_permission(self, request, view) -> bool:
        return may_curate(request.user)
