# kos key seal | unseal against swtpm's socket (docs/tpm.md, "Sealed keys"):
# the policy is computed on the host, so sealing works whatever the TPM's
# PCRs hold; unsealing works only between the Boot Kernel's marker and the
# System Kernel's leave event in PCR 15, and a refusal names the PCR.

event_sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
unseal_expect_refused() { # FILE REGEX
        local rc=0
        host_tpm "$KOS" key unseal "$1" >out 2>err || rc=$?
        [ "$rc" = 1 ] || fail "unseal of $1: exit $rc, $(cat out err)"
        grep -qE "$2" err || fail "unseal of $1: $(cat err)"
}

test_key_seal_opens_only_between_the_boot_kernel_marker_and_the_leave_event() {
        swtpm_host_start tpm
        head -c 64 /dev/urandom >appkey
        # Sealed while PCR 15 is still zero: the policy is computed, not read.
        host_tpm "$KOS" key seal --key-file appkey --output sealed >out
        grep -q '^sealed appkey to PCR 15: sealed/appkey$' out || fail "$(cat out)"
        head -c 8 sealed/appkey | grep -q KOSSEAL1 || fail "not a sealed-key file"
        # In hex: the raw bytes may hold a newline, which grep would take as two patterns.
        local key sealed i; key=$(hex_of appkey); sealed=$(hex_of sealed/appkey)
        for i in 0 32 64 96; do
                [[ $sealed != *"${key:$i:32}"* ]] || fail "key bytes $((i / 2))-$((i / 2 + 15)) are in the file in clear"
        done
        unseal_expect_refused sealed/appkey \
                'PCR 15 does not match the sealed policy \(TPM_RC_POLICY_FAIL\): it holds 0000000000000000'
        # What the Boot Kernel does before the kexec.
        host_tpm2 tpm2_pcrextend "15:sha256=$(event_sha kos-verified-boot)"
        host_tpm "$KOS" key unseal sealed/appkey >out
        [ "$(cat out)" = "unsealed 64 bytes, sha256 $(sha256sum <appkey | cut -d' ' -f1)" ] || fail "$(cat out)"
        host_tpm "$KOS" key unseal --output plain sealed/appkey
        cmp -s plain appkey || fail "unsealed another key"
        [ "$(stat -c %a plain)" = 600 ] || fail "the key was written world-readable"
        # What the System Kernel's init does once its keys are open.
        host_tpm2 tpm2_pcrextend "15:sha256=$(event_sha kos-system-initrd-leave)"
        unseal_expect_refused sealed/appkey 'PCR 15 does not match the sealed policy \(TPM_RC_POLICY_FAIL\)'
}

test_key_seal_includes_pcr_7_and_names_it_when_it_differs() {
        swtpm_host_start tpm
        head -c 32 /dev/urandom >k
        local seven; seven=$(printf '%064d' 7 | tr 0 a)
        host_tpm "$KOS" key seal --key-file k --key-id disk --pcrs 7,15 --pcr-value "7=$seven" --output sealed >/dev/null
        host_tpm2 tpm2_pcrextend "15:sha256=$(event_sha kos-verified-boot)"
        unseal_expect_refused sealed/disk 'PCR 7 does not match the sealed policy \(TPM_RC_POLICY_FAIL\)'
        # Without --pcr-value, PCR 7 is read from the TPM as it is now.
        host_tpm "$KOS" key seal --key-file k --key-id now --pcrs 7,15 --output sealed >/dev/null 2>err
        grep -q 'PCR 7: the TPM.s current value' err || fail "$(cat err)"
        host_tpm "$KOS" key unseal sealed/now >/dev/null
}

test_key_seal_refuses_a_policy_without_the_kos_pcr_and_bad_input() {
        "$KOS" key --help | grep -q 'Usage: kos key seal' || fail "kos key --help"
        "$KOS" key unseal --help | grep -q 'Usage: kos key seal' || fail "kos key unseal --help"
        swtpm_host_start tpm
        head -c 32 /dev/urandom >k
        local rc=0
        host_tpm "$KOS" key seal --key-file k --pcrs 7 --output sealed 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'must include 15' err || fail "--pcrs 7: exit $rc $(cat err)"
        for list in 15,15 24 15, ,15 x; do
                rc=0; host_tpm "$KOS" key seal --key-file k --pcrs "$list" --output sealed 2>/dev/null || rc=$?
                [ "$rc" = 2 ] || fail "--pcrs '$list' accepted"
        done
        head -c 129 /dev/urandom >big
        rc=0; host_tpm "$KOS" key seal --key-file big --output sealed 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q '1 to 128 bytes' err || fail "a 129-byte key: exit $rc $(cat err)"
        rc=0; host_tpm "$KOS" key seal --key-file k --pcrs 8,15 --output sealed 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'PCR 8 needs --manifest' err || fail "PCR 8 without a manifest: exit $rc"
}

# The file is not secret and lies on the ImageFS: whoever changes it gets
# nothing but a refusal, and another TPM cannot load it at all.
test_key_unseal_refuses_changed_files_and_other_tpms() {
        swtpm_host_start tpm
        head -c 32 /dev/urandom >k
        host_tpm "$KOS" key seal --key-file k --output sealed >/dev/null
        host_tpm2 tpm2_pcrextend "15:sha256=$(event_sha kos-verified-boot)"
        host_tpm "$KOS" key unseal sealed/k >/dev/null
        # The recorded PCR values only explain a refusal; the TPM applies the
        # object's own policy. Recorded as the PCR now holds, after the leave
        # event, they do not open it either.
        host_tpm2 tpm2_pcrextend "15:sha256=$(event_sha kos-system-initrd-leave)"
        local now; now=$(host_tpm2 tpm2_pcrread sha256:15 | sed -n 's/.*15 *: *0x\([0-9A-F]*\).*/\1/p' | tr A-F a-f)
        [ ${#now} = 64 ] || fail "cannot read PCR 15"
        # (hex to bytes with printf: xxd is not on a minimal Debian)
        { head -c 12 sealed/k; printf "$(sed 's/../\\x&/g' <<<"$now")"; tail -c +45 sealed/k; } >changed
        unseal_expect_refused changed 'the object.s policy is another \(TPM_RC_POLICY_FAIL\): the file was changed'
        # A byte of the private area (the last one) changed.
        cp sealed/k changed
        local size; size=$(stat -c %s changed)
        printf '\x55' | dd of=changed bs=1 seek=$((size - 1)) conv=notrunc status=none
        cmp -s changed sealed/k && printf '\x56' | dd of=changed bs=1 seek=$((size - 1)) conv=notrunc status=none
        unseal_expect_refused changed 'cannot load the sealed object'
        head -c 100 sealed/k >cut
        unseal_expect_refused cut 'is not a sealed-key file'
        # Another TPM (another owner seed): the same file cannot be loaded.
        swtpm_stop tpm
        mv tpm tpm-first
        swtpm_host_start tpm
        host_tpm2 tpm2_pcrextend "15:sha256=$(event_sha kos-verified-boot)"
        unseal_expect_refused sealed/k 'cannot load the sealed object \(TPM_RC_'
}

# An owner password on the owner hierarchy (issue 19, defect 11): the KOS
# storage key is derived under the owner hierarchy with the empty password at
# every seal and unseal, so both are refused, and the refusal names the
# owner's authorization instead of a raw "TPM_RC_0x9a2" (docs/tpm.md, "An
# owner password").
test_key_seal_and_unseal_with_an_owner_password_name_bad_owner_authorization() {
        swtpm_host_start tpm
        head -c 32 /dev/urandom >k
        host_tpm "$KOS" key seal --key-file k --output sealed >/dev/null
        host_tpm2 tpm2_pcrextend "15:sha256=$(event_sha kos-verified-boot)"
        host_tpm "$KOS" key unseal sealed/k >/dev/null
        host_tpm2 tpm2_changeauth -c o ownerpw
        local rc=0 why='CreatePrimary \(the KOS storage key\): bad authorization for the owner hierarchy \(TPM_RC_BAD_AUTH\): its owner has set a password'
        host_tpm "$KOS" key seal --key-file k --key-id again --output sealed 2>err || rc=$?
        cat err >&2
        [ "$rc" = 2 ] && grep -qE "$why" err || fail "seal: exit $rc, $(cat err)"
        unseal_expect_refused sealed/k "$why"
        ! grep -q 'TPM_RC_0x' err || fail "a raw code: $(cat err)"
}
