import pytest

from colorbench.core.registry import Registry, UnknownNameError


class Base:
    pass


def test_register_alias_and_lookup():
    reg = Registry("thing", base=Base)

    @reg.register("pix2pix", aliases=("cgan",))
    class P(Base):
        pass

    assert reg.get("pix2pix") is P and reg.get("cgan") is P
    assert reg.canonical("cgan") == "pix2pix"
    assert reg.names() == ["pix2pix"] and "cgan" in reg and len(reg) == 1
    assert reg.aliases_of("pix2pix") == ["cgan"]


def test_unknown_name_suggests():
    reg = Registry("method")
    reg.register("pix2pix")(type("P", (), {}))
    with pytest.raises(UnknownNameError, match=r"Unknown method 'pix2px'\. Did you mean: pix2pix\?"):
        reg.get("pix2px")


def test_duplicates_and_base_check():
    reg = Registry("thing", base=Base)
    reg.register("a")(type("A", (Base,), {}))
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(type("A2", (Base,), {}))
    with pytest.raises(TypeError, match="not a subclass of Base"):
        reg.register("b")(type("B", (), {}))
