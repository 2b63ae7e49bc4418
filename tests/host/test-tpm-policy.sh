# Signed PCR policies against swtpm's socket (docs/tpm.md, "Signed
# policies"): a key sealed to TPM2_PolicyAuthorize(the vendor's policy key)
# opens with any PolicyPCR the vendor signs for the PCRs the TPM holds, so a
# Secure Boot db/dbx update needs a new signature, not a re-seal; a policy
# signed by another key, or a Boot Kernel whose security version no policy
# approves (an old UKI: PCR 14 empty), opens nothing.

pol_sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
# The SHA-256 PCR value after extending OLD (hex) with the event EVENT.
pol_extended() {
        local hex; hex=$(printf '%s%s' "$1" "$(pol_sha "$2")" | sed 's/../\\x&/g')
        # shellcheck disable=SC2059
        printf "$hex" | sha256sum | cut -d' ' -f1
}
pol_zero=0000000000000000000000000000000000000000000000000000000000000000

# What firmware and the Boot Kernel leave in the TPM: PCR 7 (the Secure
# Boot state, here one event per db state), PCR 14 (the Boot Kernel's
# security version, when its UKI names one), PCR 15 (the marker).
pol_boot() { # DB_EVENT [SECURITY_VERSION]
        host_tpm2 tpm2_pcrextend "7:sha256=$(pol_sha "$1")"
        [ -z "${2:-}" ] || host_tpm2 tpm2_pcrextend "14:sha256=$(pol_sha "kos-bk-security-version=$2")"
        host_tpm2 tpm2_pcrextend "15:sha256=$(pol_sha kos-verified-boot)"
}

pol_refused() { # REGEX KOS_ARGS...
        local why=$1 rc=0; shift
        host_tpm "$KOS" "$@" >out 2>err || rc=$?
        [ "$rc" = 1 ] || fail "kos $*: exit $rc, $(cat out err)"
        grep -qE "$why" err || fail "kos $*: $(cat err)"
}
pol_unseal_refused() { pol_refused "$1" key unseal "${@:2}"; }

pol_fixture() {
        swtpm_host_start tpm
        "$KOS" tpm policy-key vendor.pem vendor.pub >/dev/null
        "$KOS" tpm policy-key stranger.pem stranger.pub >/dev/null
        head -c 64 /dev/urandom >appkey
        host_tpm "$KOS" key seal --key-file appkey --policy-key vendor.pub --output sealed >out
        grep -q '^sealed appkey to the signed policies of vendor.pub: sealed/appkey$' out || fail "$(cat out)"
        head -c 8 sealed/appkey | grep -q KOSSEAL2 || fail "not an authorized sealed-key file"
}

test_signed_policy_opens_the_key_after_a_pcr7_change_without_resealing() {
        pol_fixture
        local db1 db2
        db1=$(pol_extended $pol_zero db-1)
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$db1" --security-version 3 --output policy-1 >out
        grep -q '^signed policy 1 of policy-1: PCR 7 14 15$' out || fail "$(cat out)"
        pol_boot db-1 3
        host_tpm "$KOS" key unseal --policy policy-1 --policy-key vendor.pub sealed/appkey >out
        [ "$(cat out)" = "unsealed 64 bytes, sha256 $(sha256sum <appkey | cut -d' ' -f1)" ] || fail "$(cat out)"
        # A dbx update: PCR 7 moves on. The old signature no longer matches...
        host_tpm2 tpm2_pcrextend "7:sha256=$(pol_sha dbx-2)"
        db2=$(pol_extended "$db1" dbx-2)
        pol_unseal_refused 'no signed policy matches the PCRs: PCR 7 holds .*Secure Boot' \
                --policy policy-1 --policy-key vendor.pub sealed/appkey
        # ... and the release's new signature opens the same sealed file.
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$db2" --security-version 3 --output policy-2 >/dev/null
        host_tpm "$KOS" key unseal --policy policy-2 --policy-key vendor.pub --output plain sealed/appkey
        cmp -s plain appkey || fail "unsealed another key"
        # A file with both entries (a rollout) opens it too.
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$db1" --security-version 3 --output both >/dev/null
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$db2" --security-version 3 --add --output both >out
        grep -q '^signed policy 2 of both' out || fail "$(cat out)"
        host_tpm "$KOS" key unseal --policy both --policy-key vendor.pub sealed/appkey >/dev/null
        # After the leave event nothing opens it.
        host_tpm2 tpm2_pcrextend "15:sha256=$(pol_sha kos-system-initrd-leave)"
        pol_unseal_refused 'PCR 15 holds' --policy policy-2 --policy-key vendor.pub sealed/appkey
}

test_signed_policy_by_another_key_does_not_open_the_key() {
        pol_fixture
        local db1; db1=$(pol_extended $pol_zero db-1)
        pol_boot db-1 3
        "$KOS" tpm sign-policy --key stranger.pem --pcr-value "7=$db1" --security-version 3 --output forged >/dev/null
        # Verified with the vendor's key (the one the initrd carries): the TPM refuses the signature.
        pol_unseal_refused 'not signed by the vendor.s policy key in this initrd \(TPM_RC_SIGNATURE\)' \
                --policy forged --policy-key vendor.pub sealed/appkey
        # The attacker's public key offered with it: not the key the object is sealed to.
        pol_unseal_refused 'sealed to another vendor policy key' --policy forged --policy-key stranger.pub sealed/appkey
        # Even with the file's recorded key name changed to the stranger's, the
        # TPM applies the object's own policy: PolicyAuthorize passes for the
        # stranger's key, Unseal does not.
        # Its TPM name: SHA-256 of the TPMT_PUBLIC KOS loads a policy key as
        # (kos_tpm_policy_key_public()), the point from the key's DER (its
        # last 64 bytes are X and Y).
        local xy name
        xy=$(openssl pkey -pubin -in stranger.pub -outform DER | tail -c 64 | od -An -tx1 -v | tr -d ' \n')
        name=000b$(unhex <<<"0023000b00040000000000100018000b000300100020${xy:0:64}0020${xy:64:64}" | sha256sum |
                cut -c1-64)
        { head -c 8 sealed/appkey; printf "$(sed 's/../\\x&/g' <<<"$name")"; tail -c +43 sealed/appkey; } >changed
        pol_unseal_refused 'object.s policy is another \(TPM_RC_POLICY_FAIL\)' \
                --policy forged --policy-key stranger.pub changed
        # The vendor's own policy still opens the original.
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$db1" --security-version 3 --output policy >/dev/null
        host_tpm "$KOS" key unseal --policy policy --policy-key vendor.pub sealed/appkey >/dev/null
}

test_signed_policy_for_a_security_version_opens_nothing_under_an_old_boot_kernel() {
        pol_fixture
        local db1; db1=$(pol_extended $pol_zero db-1)
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$db1" --security-version 3 --output policy >/dev/null
        # An old UKI: no kos.bk_security_version, PCR 14 stays empty.
        pol_boot db-1
        pol_unseal_refused "no signed policy matches the PCRs: PCR 14 holds 0000000000000000.*security version" \
                --policy policy --policy-key vendor.pub sealed/appkey
        # A Boot Kernel with another (older) security version: refused as well.
        host_tpm2 tpm2_pcrextend "14:sha256=$(pol_sha kos-bk-security-version=2)"
        pol_unseal_refused 'PCR 14 holds' --policy policy --policy-key vendor.pub sealed/appkey
}

test_signed_policy_refuses_bad_input() {
        "$KOS" tpm policy-key vendor.pem vendor.pub >/dev/null
        [ "$(stat -c %a vendor.pem)" = 600 ] || fail "the private policy key is not 0600"
        local rc=0
        "$KOS" tpm sign-policy --key vendor.pem --pcrs 7,14 --security-version 1 --pcr-value "7=$pol_zero" \
                --output p 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'must include 15' err || fail "--pcrs without 15: exit $rc $(cat err)"
        rc=0; "$KOS" tpm sign-policy --key vendor.pem --security-version 1 --output p 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'PCR 7 needs --pcr-value' err || fail "PCR 7 without a value: exit $rc $(cat err)"
        rc=0; "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$pol_zero" --output p 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'PCR 14 needs --pcr-value 14=HEX or --security-version' err || fail "PCR 14: $(cat err)"
        rc=0; "$KOS" tpm sign-policy --key vendor.pub --pcr-value "7=$pol_zero" --security-version 1 --output p \
                2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'not a private key' err || fail "a public key to sign with: exit $rc $(cat err)"
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$pol_zero" --security-version 1 --output p >/dev/null
        head -c 50 p >cut
        rc=0; "$KOS" key unseal --policy cut --policy-key vendor.pub vendor.pub 2>err || rc=$?
        [ "$rc" = 1 ] || fail "a PEM as a sealed-key file: exit $rc"
        swtpm_host_start tpm
        head -c 32 /dev/urandom >k
        rc=0; host_tpm "$KOS" key seal --key-file k --policy-key vendor.pub --pcrs 7,15 --output s 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'not --pcrs' err || fail "--policy-key with --pcrs: exit $rc $(cat err)"
        host_tpm "$KOS" key seal --key-file k --policy-key vendor.pub --output s >/dev/null
        rc=0; host_tpm "$KOS" key unseal s/k 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'give --policy FILE' err || fail "no policy: exit $rc $(cat err)"
        pol_unseal_refused 'is not a signed-policy file' --policy cut --policy-key vendor.pub s/k
}

# A bus sniffer: a relay between kos and swtpm that records every command
# and response byte, as a probe on the TPM's LPC/SPI bus would.
pol_sniffer_start() { # LOG
        python3 - "$PWD/tpm/host.sock" "$PWD/sniff.sock" "$1" <<'PY' &
import os, socket, sys, threading
tpm, path, log = sys.argv[1:4]
srv = socket.socket(socket.AF_UNIX); srv.bind(path); srv.listen(4)
out = open(log, "a")
def pump(a, b, tag):
    while True:
        try:
            d = a.recv(65536)
        except OSError:
            d = b""
        if not d:
            try:
                b.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        out.write(tag + " " + d.hex() + "\n"); out.flush()
        b.sendall(d)
while True:
    c, _ = srv.accept()
    t = socket.socket(socket.AF_UNIX); t.connect(tpm)
    threading.Thread(target=pump, args=(c, t, "cmd"), daemon=True).start()
    threading.Thread(target=pump, args=(t, c, "rsp"), daemon=True).start()
PY
        echo $! >sniff.pid
        local i; for i in $(seq 100); do [ -S sniff.sock ] && return; sleep 0.1; done
        fail "the sniffer did not start"
}
pol_sniffer_stop() { kill "$(cat sniff.pid)" 2>/dev/null; wait "$(cat sniff.pid)" 2>/dev/null || true; }

test_unseal_with_a_signed_policy_never_carries_the_key_in_clear_on_the_tpm_bus() {
        pol_fixture
        local db1 key; db1=$(pol_extended $pol_zero db-1)
        key=$(hex_of appkey)
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$db1" --security-version 3 --output policy >/dev/null
        # The same key sealed the old way (PolicyPCR 7+15, unsalted session).
        host_tpm "$KOS" key seal --key-file appkey --key-id old --pcrs 7,15 --pcr-value "7=$db1" --output sealed >/dev/null
        pol_boot db-1 3
        pol_sniffer_start bus.log
        KOS_TPM=$PWD/sniff.sock "$KOS" key unseal --policy policy --policy-key vendor.pub --output plain sealed/appkey
        cmp -s plain appkey || fail "unsealed another key"
        grep -q '^rsp ' bus.log || fail "the sniffer saw nothing"
        # Neither the key nor any 16 bytes of it crosses the bus.
        local i; for i in 0 32 64 96; do
                ! grep -q "${key:$i:32}" bus.log || fail "key bytes $((i / 2))-$((i / 2 + 15)) on the bus in clear"
        done
        # The sniffer sees the old scheme's key: the check has teeth.
        : >bus.log
        KOS_TPM=$PWD/sniff.sock "$KOS" key unseal --output plain-old sealed/old
        cmp -s plain-old appkey || fail "the old file unsealed another key"
        grep -q "^rsp .*$key" bus.log || fail "the sniffer missed the unsalted unseal's key"
        pol_sniffer_stop
}

# A key sealed the old way (PolicyPCR 7+15) moves to the signed policies
# while its old policy still opens it; afterwards a PCR 7 change needs only
# a new signature. A signed policy that would not open the new object
# leaves the old file as it was.
test_key_sealed_to_pcr_values_migrates_to_signed_policies_while_the_old_policy_opens_it() {
        pol_fixture
        local db1 db2; db1=$(pol_extended $pol_zero db-1)
        host_tpm "$KOS" key seal --key-file appkey --key-id old --pcrs 7,15 --pcr-value "7=$db1" --output sealed >/dev/null
        cp sealed/old kept
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$db1" --security-version 3 --output policy-1 >/dev/null
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$pol_zero" --security-version 3 --output wrong >/dev/null
        pol_boot db-1 3
        pol_refused 'does not open the new object \(no signed policy matches the PCRs: PCR 7' \
                key migrate --policy wrong --policy-key vendor.pub sealed/old
        cmp -s sealed/old kept || fail "a failed migration changed the file"
        host_tpm "$KOS" key migrate --policy policy-1 --policy-key vendor.pub sealed/old >out
        grep -q '^migrated sealed/old to the signed policies of vendor.pub$' out || fail "$(cat out)"
        head -c 8 sealed/old | grep -q KOSSEAL2 || fail "not migrated"
        host_tpm "$KOS" key unseal --policy policy-1 --policy-key vendor.pub --output plain sealed/old
        cmp -s plain appkey || fail "the migrated file holds another key"
        # The dbx update that would have shut the old file for good.
        host_tpm2 tpm2_pcrextend "7:sha256=$(pol_sha dbx-2)"
        db2=$(pol_extended "$db1" dbx-2)
        pol_unseal_refused 'PCR 7 does not match the sealed policy' kept
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$db2" --security-version 3 --output policy-2 >/dev/null
        host_tpm "$KOS" key unseal --policy policy-2 --policy-key vendor.pub sealed/old >/dev/null
        # Once the old policy no longer opens it, there is nothing to migrate.
        pol_refused 'cannot migrate kept: PCR 7 does not match' \
                key migrate --policy policy-2 --policy-key vendor.pub kept
}
