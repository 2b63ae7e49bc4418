# The rollback floor in a TPM NV counter (docs/tpm.md), against swtpm (the
# real TPM 2.0 reference code, libtpms) through its socket: kos_mark_good()
# raises both stores, the floor read is the higher, and neither deleting the
# counter nor putting another index in its place ever lowers it.

tpm_release() { # NAME SECURITY_VERSION: a signed manifest installed in img/
        "$KOS" manifest create --name "$1" --version "$2" --security-version "$2" --kernel vmlinuz --initrd initrd \
                --cmdline "kos.test=$1" --component base=base.img -o "$1.json"
        "$KOS" manifest sign --key secret.pem "$1.json" >/dev/null
        "$KOS" install img "$1.json" >/dev/null
}

with_tpm() { KOS_TPM=$PWD/tpm/host.sock "$@"; }
tpm2() { TPM2TOOLS_TCTI=swtpm:path=$PWD/tpm/host.sock "$@"; }

test_tpm_mark_good_raises_the_counter_and_the_floor_survives_losing_the_file() {
        fixture
        tpm_release v1 1; tpm_release v2 2
        activate v2 v1
        swtpm_host_start tpm
        with_tpm "$KOS" mark-good --keyring keyring img v2 >/dev/null
        [ "$(cat img/boot-state/rollback-floor)" = 2 ] || fail "file floor not raised"
        [ "$(with_tpm "$KOS" tpm floor)" = 2 ] || fail "TPM floor not raised"
        # The NV index KOS defines: a counter, empty auth, increments of 1.
        tpm2 tpm2_nvreadpublic 0x01004b4f >pub
        grep -q 'value: 0x22040014' pub || fail "attributes: $(cat pub)"
        [ "$(tpm2 tpm2_nvread 0x01004b4f -C 0x01004b4f 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 0000000000000003 ] ||
                fail "the counter does not hold floor + 1"
        rm -rf img/boot-state
        activate v1 v2
        with_tpm "$KOS" select img --keyring keyring --explain >explain || true
        grep -q '^rollback floor: security_version 2 (tpm)' explain || fail "$(cat explain)"
        grep -q "v1.*rollback: security_version 1 is below this device's floor 2" explain || fail "$(cat explain)"
        KOS_TPM=none "$KOS" select img --keyring keyring --explain >explain || true
        grep -q '^rollback floor: security_version 0 (none)' explain || fail "without the TPM: $(cat explain)"
}

test_tpm_floor_never_goes_down() {
        swtpm_host_start tpm
        [ "$(with_tpm "$KOS" tpm provision)" = "defined the counter; first increment: floor 0" ] || fail provision
        with_tpm "$KOS" tpm raise 3
        local rc=0; with_tpm "$KOS" tpm raise 2 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'already higher' err || fail "raise 2 after 3: exit $rc $(cat err)"
        [ "$(with_tpm "$KOS" tpm floor)" = 3 ] || fail "floor moved"
        with_tpm "$KOS" tpm raise 3
        rc=0; with_tpm "$KOS" tpm raise 5000 2>err || rc=$?
        [ "$rc" = 2 ] || fail "a raise of 4997 steps: exit $rc"
}

# Root on a device with an empty owner authorization can delete the index
# (TPM2_NV_UndefineSpace); the TPM remembers the highest counter value it
# ever held, so the counter defined again starts above it.
test_tpm_counter_deleted_or_replaced_by_root_comes_back_higher() {
        swtpm_host_start tpm
        with_tpm "$KOS" tpm raise 2
        tpm2 tpm2_nvundefine 0x01004b4f -C o
        local rc=0; with_tpm "$KOS" tpm floor 2>/dev/null || rc=$?
        [ "$rc" = 2 ] || fail "floor of a deleted counter: exit $rc"
        [ "$(with_tpm "$KOS" tpm provision)" = "defined the counter; first increment: floor 3" ] || fail "redefined lower"
        # An ordinary index, writable by the owner, put where the counter was.
        tpm2 tpm2_nvundefine 0x01004b4f -C o
        tpm2 tpm2_nvdefine 0x01004b4f -C o -s 8 -a "ownerwrite|ownerread|authread" >/dev/null
        printf '\0\0\0\0\0\0\0\1' | tpm2 tpm2_nvwrite 0x01004b4f -C o -i -
        rc=0; with_tpm "$KOS" tpm floor 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'not the KOS floor counter' err || fail "foreign index: exit $rc $(cat err)"
        [ "$(with_tpm "$KOS" tpm provision)" = \
          "replaced an NV index that was not the KOS counter; defined the counter; first increment: floor 4" ] ||
                fail "replaced lower"
}
