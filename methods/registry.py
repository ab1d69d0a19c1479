"""The method registry: ``@register_method("name")`` on a :class:`~colorbench.methods.base.Method` subclass."""

from colorbench.methods.base import Method
from colorbench.core.registry import Registry

METHODS: Registry[type[Method]] = Registry("method", base=Method)
register_method = METHODS.register
