from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.parsers import JSONParser


class LimitedJSONParser(JSONParser):
    """JSON, refusing a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE with 413 before reading it.

    The default parser of every API view (settings.REST_FRAMEWORK). DRF 3.16 parses JSON from the
    request stream, which skips Django's size check in `request.body`; this holds on every version."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        if limit is not None and request is not None:
            meta = request.META
            try:
                length = int(meta.get("CONTENT_LENGTH") or meta.get("HTTP_CONTENT_LENGTH") or 0)
            except (TypeError, ValueError):
                length = 0
            if length > limit:
                raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        return super().parse(stream, media_type, parser_context)
