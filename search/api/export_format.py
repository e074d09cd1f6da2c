"""``format=csv|zip`` on search answers and image lists (the files: search/services/export.py).

DRF reads ``?format=`` as a renderer override and would answer 404 for a renderer it does not have;
:class:`ExportNegotiation` leaves every value but a renderer's own to the view, which streams csv and
zip itself and answers 400 for anything else.
"""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation

from search.services.export import FORMATS


class ExportNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        wanted = request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        if wanted and wanted not in {renderer.format for renderer in renderers}:
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)


def format_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=["json", *FORMATS],
        default="json",
        required=False,
        help_text="json (default); csv: every metadata field, score and similarity; zip: the images and that CSV.",
    )
