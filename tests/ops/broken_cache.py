from django.core.cache.backends.base import BaseCache


class BrokenCache(BaseCache):
    """A cache server that does not answer."""

    def __init__(self, location, params):
        super().__init__(params)

    def _fail(self, *args, **kwargs):
        raise ConnectionError("cache server unreachable")

    add = get = set = delete = touch = clear = has_key = _fail
