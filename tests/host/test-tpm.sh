# The rollback floor in a TPM NV counter (docs/tpm.md), against swtpm (the
# real TPM 2.0 reference code, libtpms) through its socket: kos_mark_good()
# raises both stores, the floor read is the higher, and nothing root does to
# the TPM (tpm2-tools plays root: delete, define again with a secret
# authValue or other attributes, fill NV, set an owner password) makes a
# release below the highest floor boot: the counter comes back above it, or
# nothing boots.

tpm_release() { # NAME SECURITY_VERSION: a signed manifest installed in img/
        "$KOS" manifest create --name "$1" --version "$2" --security-version "$2" --kernel vmlinuz --initrd initrd \
                --cmdline "kos.test=$1" --component base=base.img -o "$1.json"
        "$KOS" manifest sign --key secret.pem "$1.json" >/dev/null
        "$KOS" install img "$1.json" >/dev/null
}


# The counter's value as anyone reads it: tpm2-tools' own policy session
# (PolicyCommandCode NV_Read, PolicyOR with NV_Increment), no secret.
policy_nvread() {
        local cc
        for cc in NV_Read NV_Increment; do
                host_tpm2 tpm2_startauthsession -S trial.ctx
                host_tpm2 tpm2_policycommandcode -S trial.ctx -L "$cc.pol" "TPM2_CC_$cc" >/dev/null
                host_tpm2 tpm2_flushcontext trial.ctx
        done
        host_tpm2 tpm2_startauthsession --policy-session -S s.ctx
        host_tpm2 tpm2_policycommandcode -S s.ctx TPM2_CC_NV_Read >/dev/null
        host_tpm2 tpm2_policyor -S s.ctx sha256:NV_Read.pol,NV_Increment.pol >/dev/null
        host_tpm2 tpm2_nvread 0x01004b4f -C 0x01004b4f -P session:s.ctx 2>/dev/null | od -An -tx1 | tr -d ' \n'
        host_tpm2 tpm2_flushcontext s.ctx 2>/dev/null || true
}

# A device whose release of security_version 2 was marked good, with the TPM
# floor and the file at 2, where root then puts v1 (security_version 1)
# first in active and writes 0 into boot-state/rollback-floor.
floor_2_then_root_rewrites_the_file() {
        fixture
        tpm_release v1 1; tpm_release v2 2
        activate v2 v1
        swtpm_host_start tpm
        host_tpm "$KOS" tpm provision >/dev/null
        cp img/manifests/v1.json img/manifests/v1.json.sig .
        host_tpm "$KOS" mark-good --keyring keyring img v2 >/dev/null
        [ "$(host_tpm "$KOS" tpm floor)" = 2 ] || fail "the TPM floor is not 2"
        # Root puts the old signed manifest back (marking v2 good
        # uninstalled it) and first in active.
        cp v1.json v1.json.sig img/manifests/
        activate v1 v2
        echo 0 >img/boot-state/rollback-floor
}

# What the Boot Kernel does, through the same library calls: provision the
# counter (kos_rollback_tpm_prepare), then select (kos_select). Everything
# goes to boot.log, which is shown (the test's console).
boot_kernel() {
        local rc=0
        { echo "\$ kos tpm provision"; host_tpm "$KOS" tpm provision 2>&1 || echo "(exit $?)"
          echo "\$ kos select img --explain"; host_tpm "$KOS" select img --keyring keyring --explain 2>&1 || rc=$?
          echo "(exit $rc)"; } >boot.log
        sed 's/^/  | /' boot.log >&2
}

# Not v1: the floor (2) was reached, so security_version 1 never boots.
expect_v1_never_boots() {
        ! grep -q '^selected v1 ' boot.log || fail "booted security_version 1 after 2 was marked good"
}

# Nothing boots, and the reason says why ($1, a regex).
expect_fails_closed() {
        grep -q '^(exit 1)$' boot.log || fail "selection did not fail closed"
        ! grep -q '^selected ' boot.log || fail "something was selected"
        grep -qE "kos: rollback floor: TPM .*$1.*nothing may boot" boot.log || fail "no reason matching '$1'"
}

test_tpm_mark_good_raises_the_counter_and_the_floor_survives_losing_the_file() {
        fixture
        tpm_release v1 1; tpm_release v2 2
        activate v2 v1
        swtpm_host_start tpm
        host_tpm "$KOS" tpm provision >/dev/null # the Boot Kernel's first step
        cp img/manifests/v1.json v1.json && cp img/manifests/v1.json.sig v1.json.sig
        host_tpm "$KOS" mark-good --keyring keyring img v2 >/dev/null
        [ "$(cat img/boot-state/rollback-floor)" = 2 ] || fail "file floor not raised"
        [ "$(host_tpm "$KOS" tpm floor)" = 2 ] || fail "TPM floor not raised"
        # The NV index KOS defines: a counter read and incremented through a
        # fixed policy; anyone reads it with that policy and no secret.
        host_tpm2 tpm2_nvreadpublic 0x01004b4f >pub
        grep -q 'value: 0x22080018' pub || fail "attributes: $(cat pub)"
        grep -qi "authorization policy: $("$KOS" tpm floor-policy)" pub || fail "policy: $(cat pub)"
        [ "$(policy_nvread)" = 0000000000000004 ] || fail "the counter does not hold floor + 2"
        # Whoever has the disk removes the floor file and puts the old
        # signed manifest back (marking v2 good uninstalled it) first in active.
        rm -rf img/boot-state
        cp v1.json v1.json.sig img/manifests/
        activate v1 v2
        host_tpm "$KOS" select img --keyring keyring --explain >explain || true
        grep -q '^rollback floor: security_version 2 (tpm)' explain || fail "$(cat explain)"
        grep -q "v1.*rollback: security_version 1 is below this device's floor 2" explain || fail "$(cat explain)"
        KOS_TPM=none "$KOS" select img --keyring keyring --explain >explain || true
        grep -q '^rollback floor: security_version 0 (none)' explain || fail "without the TPM: $(cat explain)"
}

test_tpm_floor_never_goes_down() {
        swtpm_host_start tpm
        [ "$(host_tpm "$KOS" tpm provision)" = "defined the counter; first increment: floor 0" ] || fail provision
        host_tpm "$KOS" tpm raise 3
        local rc=0; host_tpm "$KOS" tpm raise 2 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'already higher' err || fail "raise 2 after 3: exit $rc $(cat err)"
        [ "$(host_tpm "$KOS" tpm floor)" = 3 ] || fail "floor moved"
        host_tpm "$KOS" tpm raise 3
        rc=0; host_tpm "$KOS" tpm raise 5000 2>err || rc=$?
        [ "$rc" = 2 ] || fail "a raise of 4997 steps: exit $rc"
}

# The attack of issue 19: root (empty owner authorization, the default)
# deletes the counter and defines the first KOS definition again (the same
# attributes, SHA-256, 8 bytes, no policy) with a secret authValue. Reading
# it with the empty password fails; that is tampering, never a fall back to
# the ImageFS floor that root just set to 0. An index with the counter's own
# public area and a secret authValue changes nothing: its authValue is never
# used, the policy reads it, and it comes back above the floor.
test_nv_floor_redefined_with_a_secret_auth_value_is_tampering_and_fails_closed() {
        floor_2_then_root_rewrites_the_file
        host_tpm2 tpm2_nvundefine 0x01004b4f -C o
        host_tpm2 tpm2_nvdefine 0x01004b4f -C o -s 8 -a "nt=counter|authread|authwrite|no_da" -p secret >/dev/null
        host_tpm2 tpm2_nvincrement 0x01004b4f -C 0x01004b4f -P secret
        boot_kernel
        expect_v1_never_boots
        grep -q 'it was defined again with a secret authValue (tampering)' boot.log || fail "provisioning: no reason"
        expect_fails_closed 'TPM_RC_BAD_AUTH.*secret authValue \(tampering\)'

        "$KOS" tpm floor-policy | unhex >policy.bin
        host_tpm2 tpm2_nvundefine 0x01004b4f -C o
        host_tpm2 tpm2_nvdefine 0x01004b4f -C o -s 8 -a "nt=counter|policyread|policywrite|no_da" -L policy.bin \
                -p secret >/dev/null
        boot_kernel
        expect_v1_never_boots
        grep -q '^first increment: floor [3-9]$' boot.log || fail "the counter did not come back above 2"
        grep -q "v1 .*rollback: security_version 1 is below this device's floor [3-9]" boot.log || fail "v1 not refused"
}

# Deleted (root, empty owner authorization): selection alone fails closed,
# and provisioning brings the counter back above the highest floor it ever
# held (the TPM remembers it), so v2 is refused too: a denial of service,
# never a rollback. The enforced floor is also never below the file's.
test_nv_floor_deleted_comes_back_above_the_highest_floor_or_fails_closed() {
        floor_2_then_root_rewrites_the_file
        host_tpm2 tpm2_nvundefine 0x01004b4f -C o
        local rc=0; host_tpm "$KOS" select img --keyring keyring >out 2>err || rc=$?
        cat out err >&2
        ! grep -q '^selected v1 ' out || fail "booted security_version 1 after 2 was marked good"
        [ "$rc" = 1 ] && grep -q 'NV 0x01004b4f is not defined.*nothing may boot' err || fail "exit $rc: $(cat err)"
        boot_kernel
        expect_v1_never_boots
        grep -q '^defined the counter; first increment: floor 3$' boot.log || fail "not back above 2"
        grep -q "v2 .*rollback: security_version 2 is below this device's floor 3" boot.log || fail "floor not 3"
        echo 7 >img/boot-state/rollback-floor
        host_tpm "$KOS" select img --keyring keyring --explain >explain || true
        grep -q '^rollback floor: security_version 7 (stored)$' explain || fail "$(cat explain)"
}

# Another index where the counter was (other attributes, the counter's
# attributes without its policy, a policy that reads but never increments):
# not exactly ours is tampering. It is left where it is (replacing it would
# hide the attack) and nothing boots.
test_nv_floor_redefined_with_other_attributes_is_tampering_and_fails_closed() {
        floor_2_then_root_rewrites_the_file
        host_tpm2 tpm2_startauthsession -S trial.ctx
        host_tpm2 tpm2_policycommandcode -S trial.ctx -L read-only.pol TPM2_CC_NV_Read >/dev/null
        host_tpm2 tpm2_flushcontext trial.ctx
        local how
        for how in "-s 8 -a ownerwrite|ownerread|authread" "-s 8 -a nt=counter|policyread|policywrite|no_da" \
                   "-s 8 -a nt=counter|policyread|policywrite|no_da -L read-only.pol"; do
                host_tpm2 tpm2_nvundefine 0x01004b4f -C o
                # shellcheck disable=SC2086
                host_tpm2 tpm2_nvdefine 0x01004b4f -C o $how >/dev/null
                host_tpm2 tpm2_nvreadpublic 0x01004b4f >before
                boot_kernel
                expect_v1_never_boots
                grep -q 'cannot provision the floor counter: NV 0x01004b4f is not the KOS floor counter' boot.log ||
                        fail "$how: provisioned"
                expect_fails_closed 'is not the KOS floor counter \(attributes .*\): tampering'
                host_tpm2 tpm2_nvreadpublic 0x01004b4f | cmp -s - before || fail "$how: replaced"
        done
}

# Root deletes the counter and fills the TPM's NV memory (indices, then
# counters, until the TPM says TPM_RC_NV_SPACE): the counter cannot be
# defined again, so nothing boots.
test_nv_space_exhausted_fails_closed_instead_of_falling_back() {
        floor_2_then_root_rewrites_the_file
        host_tpm2 tpm2_nvundefine 0x01004b4f -C o
        local n=0 spec
        for spec in "-s 2048 -a ownerwrite|ownerread" "-s 8 -a ownerwrite|ownerread" \
                    "-s 8 -a nt=counter|ownerwrite|ownerread"; do
                # shellcheck disable=SC2086
                while n=$((n + 1)) && host_tpm2 tpm2_nvdefine "$(printf '0x0150%04x' $n)" -C o $spec >/dev/null 2>err; do :; done
                grep -q 0x14B err || fail "NV define failed otherwise: $(cat err)"
        done
        boot_kernel
        expect_v1_never_boots
        grep -q "cannot define NV 0x01004b4f: the TPM's NV memory is full (TPM_RC_NV_SPACE)" boot.log ||
                fail "provisioning: no reason"
        expect_fails_closed 'NV 0x01004b4f is not defined'

}

# An owner password on the owner hierarchy: the counter is still read and
# raised without it (no secret is involved). Root who knows it deletes the
# counter: KOS cannot define it again, so nothing boots, and the reason names
# the owner's authorization. The owner's documented way back (docs/tpm.md,
# "An owner password"): define it with tpm2_nvdefine and the password, and
# the next boot's first increment brings it back above the floor.
test_nv_floor_with_an_owner_password_is_read_and_raised_without_it_and_never_falls_back() {
        floor_2_then_root_rewrites_the_file
        tpm_release v3 3
        host_tpm2 tpm2_changeauth -c o ownerpw
        host_tpm "$KOS" mark-good --keyring keyring img v3 >/dev/null
        [ "$(host_tpm "$KOS" tpm floor)" = 3 ] || fail "not raised to 3 with an owner password"
        activate v1 v2 v3
        echo 0 >img/boot-state/rollback-floor
        host_tpm2 tpm2_nvundefine 0x01004b4f -C o -P ownerpw
        boot_kernel
        expect_v1_never_boots
        ! grep -q '^selected v2 ' boot.log || fail "booted security_version 2 after 3 was marked good"
        grep -q 'cannot define NV 0x01004b4f: bad authorization for the owner hierarchy (TPM_RC_BAD_AUTH)' boot.log ||
                fail "provisioning: no reason"
        expect_fails_closed 'NV 0x01004b4f is not defined'
        "$KOS" tpm floor-policy | unhex >policy.bin
        host_tpm2 tpm2_nvdefine 0x01004b4f -C o -P ownerpw -s 8 -a "nt=counter|policyread|policywrite|no_da" \
                -L policy.bin >/dev/null
        boot_kernel
        grep -q '^first increment: floor 4$' boot.log || fail "not back above 3"
}

# A device provisioned by KOS before issue 19 (the first definition: empty
# authValue, no policy, the floor + 1) migrates at its next boot and keeps
# its floor exactly: the release it runs (v2) still boots, v1 does not. A
# migration cut after the undefine gives the same floor; with an owner
# password the first definition is kept, read with the empty password.
test_first_definition_of_the_counter_migrates_at_the_next_boot_keeping_the_floor() {
        fixture
        tpm_release v1 1; tpm_release v2 2
        activate v1 v2
        swtpm_host_start tpm
        echo 2 >img/boot-state/rollback-floor 2>/dev/null || { mkdir -p img/boot-state; echo 2 >img/boot-state/rollback-floor; }
        local first="nt=counter|authread|authwrite|no_da" i
        host_tpm2 tpm2_nvdefine 0x01004b4f -C o -s 8 -a "$first" >/dev/null
        for i in 1 2 3; do host_tpm2 tpm2_nvincrement 0x01004b4f -C 0x01004b4f; done # floor 2
        [ "$(host_tpm "$KOS" tpm floor)" = 2 ] || fail "the first definition's floor is not read"
        boot_kernel
        grep -q '^migrated the first definition of the counter (floor 2) to the policy-authorized one (floor 2)$' \
                boot.log || fail "not migrated"
        grep -q "v1 .*rollback: security_version 1 is below this device's floor 2" boot.log || fail "v1 not refused"
        grep -q '^selected v2 ' boot.log || fail "the running release was refused"
        host_tpm2 tpm2_nvreadpublic 0x01004b4f | grep -q 'value: 0x22080018' || fail "not the policy counter"
        [ "$(policy_nvread)" = 0000000000000004 ] || fail "the counter does not hold floor + 2"
        boot_kernel
        grep -q '^already provisioned$' boot.log && grep -q '^selected v2 ' boot.log || fail "second boot"

        # Cut short: the first definition (floor 2 again, at counter 5) undefined, nothing defined yet.
        host_tpm2 tpm2_nvundefine 0x01004b4f -C o
        host_tpm2 tpm2_nvdefine 0x01004b4f -C o -s 8 -a "$first" >/dev/null
        host_tpm2 tpm2_nvincrement 0x01004b4f -C 0x01004b4f # the TPM starts it at 5: floor 4
        host_tpm2 tpm2_nvundefine 0x01004b4f -C o
        boot_kernel
        grep -q '^defined the counter; first increment: floor 4$' boot.log || fail "cut migration: another floor"

        # An owner password: the first definition cannot be undefined, and is kept.
        host_tpm2 tpm2_nvundefine 0x01004b4f -C o
        host_tpm2 tpm2_nvdefine 0x01004b4f -C o -s 8 -a "$first" >/dev/null
        host_tpm2 tpm2_nvincrement 0x01004b4f -C 0x01004b4f # 7: floor 6
        host_tpm2 tpm2_changeauth -c o ownerpw
        boot_kernel
        grep -q '^kept the first definition of the counter (floor 6): the owner hierarchy has a password' boot.log ||
                fail "first definition with an owner password"
        host_tpm "$KOS" tpm raise 7
        [ "$(host_tpm "$KOS" tpm floor)" = 7 ] || fail "the kept first definition is not raised"
}
