"""The method registry: ``@register_method("name")`` on a :class:`~colorbench.methods.base.Method` subclass, and
:func:`register_variant` for a method that is another one with other option values (a :class:`Variant`, data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from colorbench.core.registry import Registry
from colorbench.methods.base import Method, MethodCard, PresetScale

METHODS: Registry[type[Method]] = Registry("method", base=Method)
register_method = METHODS.register


@dataclass(frozen=True)
class Variant:
    """A registered method that is ``base`` with other option values: a name, a card, and options, no code.

    Its presets are ``presets`` (default: the base's), each with ``options`` on top, except the ``overlays``
    (presets that set a few options on top of another preset: kept as they are).

    Attributes:
        name: registry name (also ``card.name``).
        base: the method class whose code the variant runs.
        card: the variant's card.
        options: option values set on top of every preset but the overlays.
        presets: the presets the options go on; None: the base's.
        overlays: names of presets left as they are.
        preset_scales: the scale each paper preset was defined at; None: the base's.
        switches: class attributes of ``base`` (or of a mixin) the variant sets (behaviour a Config option does not
            select, e.g. where a feature network's weights come from); each must exist there.
        mixins: classes with code of their own that are not ``Method`` subclasses, put before ``base`` in the
            generated class's bases (e.g. ``gorriz.FeatureReconstruction``): a variant adds a behaviour without a
            further level of ``Method`` subclasses (issue 21: at most three below ``Method``).
        doc: one line for the generated class's docstring.
    """

    name: str
    base: type[Method]
    card: MethodCard
    options: Mapping[str, Any] = field(default_factory=dict)
    presets: Mapping[str, Mapping[str, Any]] | None = None
    overlays: tuple[str, ...] = ()
    preset_scales: Mapping[str, PresetScale] | None = None
    switches: Mapping[str, Any] = field(default_factory=dict)
    mixins: tuple[type, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        if self.card.name != self.name:
            raise ValueError(f"variant {self.name!r}: its card is named {self.card.name!r}")
        methods = [m.__name__ for m in self.mixins if issubclass(m, Method)]
        if methods:
            raise ValueError(f"variant {self.name!r}: mixins {methods} are Method subclasses; make the variant's "
                             "base one of them, or write the behaviour as a mixin that is not a Method")
        unknown = sorted(k for k in self.switches if not any(hasattr(c, k) for c in (*self.mixins, self.base)))
        if unknown:
            owner = " + ".join(c.__name__ for c in (*self.mixins, self.base))
            raise ValueError(f"variant {self.name!r}: {owner} has no attribute(s) {unknown} to switch")

    def class_presets(self) -> dict[str, dict[str, Any]]:
        """The variant's presets: each of ``presets`` (or the base's) with ``options`` on top, overlays kept."""
        presets = self.base.presets if self.presets is None else self.presets
        return {p: dict(v) if p in self.overlays else {**v, **self.options} for p, v in presets.items()}

    def class_name(self) -> str:
        """``"cgan-dcgan"`` -> ``"CganDcgan"``: the generated class's name (bind the class to it in its module)."""
        return "".join(part.title() for part in self.name.replace("_", "-").split("-"))


def register_variant(variant: Variant, module: str) -> type[Method]:
    """Register ``variant`` as a method: a class of ``variant.base`` (after ``variant.mixins``) holding only the
    variant's data.

    Args:
        variant: the variant.
        module: ``__name__`` of the module that defines it (bind the class there under ``variant.class_name()``).
    """
    attrs: dict[str, Any] = {
        "card": variant.card, "presets": variant.class_presets(), "variant": variant,
        "__doc__": variant.doc or f"{variant.base.__name__} with other options: {variant.card.title}.",
        "__module__": module, "__qualname__": variant.class_name(), **variant.switches,
    }
    if variant.preset_scales is not None:
        attrs["preset_scales"] = dict(variant.preset_scales)
    cls = type(variant.class_name(), (*variant.mixins, variant.base), attrs)
    return register_method(variant.name)(cls)
