"""binfmt_misc entries as the kernel prints them (recorded from Debian 12 with qemu-user-static 7.2)."""

from imagepipe.host.emulation import Handler, parse_handler

ENTRY = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


def test_enabled_with_fix_binary():
    assert parse_handler(ENTRY) == Handler(enabled=True, fix_binary=True)


def test_disabled_or_without_f():
    assert parse_handler(ENTRY.replace("enabled", "disabled", 1)).enabled is False
    assert parse_handler(ENTRY.replace("flags: PF", "flags: P")).fix_binary is False
    assert parse_handler("") == Handler(enabled=False, fix_binary=False)
