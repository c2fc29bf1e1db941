from banger.core.netmode import NetworkMode, choose_network_mode


def test_root_bridges_even_with_a_setup() -> None:
    assert choose_network_mode(0, has_setup=True).mode is NetworkMode.BRIDGE
    assert choose_network_mode(0, has_setup=False).mode is NetworkMode.BRIDGE


def test_an_ordinary_user_with_a_setup_takes_the_pool() -> None:
    assert choose_network_mode(1000, has_setup=True).mode is NetworkMode.POOL


def test_an_ordinary_user_without_setup_falls_back_to_user_networking() -> None:
    choice = choose_network_mode(1000, has_setup=False)
    assert choice.mode is NetworkMode.USER
    assert "system setup" in choice.reason


def test_the_mode_is_its_wire_string() -> None:
    assert NetworkMode("pool") is NetworkMode.POOL
    assert NetworkMode.USER == "user"
