from banger.core import posixacl
from banger.core.posixacl import GROUP_OBJ, MASK, USER, from_mode


def test_granting_a_user_adds_its_entry_and_a_mask_and_round_trips() -> None:
    granted = posixacl.with_user(from_mode(0o600), 1000, 6)
    assert posixacl.user_perm(granted, 1000) == 6
    assert next(e.perm for e in granted if e.tag == MASK) == 6
    assert posixacl.parse(posixacl.render(granted)) == sorted(granted)


def test_revoking_the_last_named_user_drops_the_acl_and_keeps_others() -> None:
    base = from_mode(0o640)
    one = posixacl.with_user(base, 1000, 6)
    assert posixacl.without_user(one, 1000) is None
    two = posixacl.with_user(one, 1001, 6)
    left = posixacl.without_user(two, 1000)
    assert left is not None
    assert [e.id for e in left if e.tag == USER] == [1001]
    assert posixacl.group_obj_perm(left) == 4
    assert any(e.tag == GROUP_OBJ for e in left)


def test_the_kernels_layout() -> None:
    raw = posixacl.render(from_mode(0o600))
    assert raw[:4] == b"\x02\x00\x00\x00" and len(raw) == 4 + 3 * 8
