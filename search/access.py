"""Who may change the collection: the one rule behind the API's writes and the admin's upload and rebuild.

Any active staff user may add images and start index rebuilds, through the API (session or token) or
the admin alike (CONTRACT: "staff or token"); Django's per-model permissions are not required for them.
Editing or deleting existing rows in the admin still follows Django's model permissions, and so does
everything else the admin shows. See docs/SECURITY.md, "Who may do what".
"""

from __future__ import annotations


def may_curate(user) -> bool:
    """True for an active staff user: may upload images and rebuild the index (API and admin)."""
    return bool(user is not None and user.is_active and user.is_staff)
