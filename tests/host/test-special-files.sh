# No file of any type anywhere on the ImageFS can hang a stage: a FIFO,
# socket, device node or symlink where a regular file belongs is rejected
# with a reason (or replaced, where kos writes), and selection goes on.
# Every command runs under `timeout 5`: a hang is a failure, not a stuck run.

# A second, valid manifest "b" with its own base layer, so "a" can be broken
# without breaking "b".
manifest_b_own_base() {
        mkdir -p base-b/etc && echo b >base-b/etc/layer
        mksquashfs base-b base-b.img -quiet -noappend >/dev/null
        "$KOS" component add img base-b.img >/dev/null
        "$KOS" manifest create --name b --version 2 --kernel vmlinuz --initrd initrd \
                --component base=base-b.img --component app=app.img -o b.json
        "$KOS" manifest sign --key secret.pem b.json >/dev/null
        "$KOS" install img b.json >/dev/null
}

# timed_select: kos select --json under a 5 s timeout; fails the test on a hang.
timed_select() {
        local rc=0
        timeout 5 "$KOS" select img --keyring keyring --json >sel.json 2>sel.err || rc=$?
        [ "$rc" != 124 ] || fail "kos select hung (killed after 5 s)"
        return 0
}

expect_rejected_in() { # NAME REASON DETAIL-SUBSTRING, from sel.json
        local got
        got=$(jq -r --arg n "$1" '[.manifests[] | select(.name == $n)][0] | "\(.verdict) \(.reason)"' sel.json)
        [ "$got" = "rejected $2" ] || fail "$1: got '$got', wanted 'rejected $2' in $(cat sel.json)"
        jq -r --arg n "$1" '[.manifests[] | select(.name == $n)][0].detail' sel.json | grep -q "$3" ||
                fail "$1: detail does not say '$3': $(cat sel.json)"
}

test_fifo_as_manifest_is_rejected_and_selection_goes_on() {
        fixture; manifest a; manifest_b_own_base
        rm img/manifests/a.json && mkfifo img/manifests/a.json
        activate a b
        timed_select
        expect_rejected_in a manifest-missing 'not a regular file'
        [ "$(jq -r .selected.name sel.json)" = b ] || fail "b not selected: $(cat sel.json)"
}

test_fifo_as_active_fails_fast_with_a_clear_error() {
        fixture; manifest a
        rm img/active && mkfifo img/active
        local rc=0
        timeout 5 "$KOS" select img --keyring keyring >out 2>err || rc=$?
        [ "$rc" = 1 ] || fail "exit $rc (124 is a hang): $(cat err)"
        grep -q 'active cannot be read (not a regular file)' err || fail "unclear error: $(cat err)"
        rc=0; timeout 5 "$KOS" list img >/dev/null 2>&1 || rc=$?
        [ "$rc" != 124 ] || fail "kos list hung"
}

test_fifo_as_signature_is_rejected_and_selection_goes_on() {
        fixture; manifest a; manifest_b_own_base
        rm img/manifests/a.json.sig && mkfifo img/manifests/a.json.sig
        activate a b
        timed_select
        expect_rejected_in a signature-malformed 'not a regular file'
        [ "$(jq -r .selected.name sel.json)" = b ] || fail "b not selected"
}

# boot-state/ entries are only ever renamed, never opened; the files kos
# creates there go through a temporary name, which a FIFO must not block.
test_fifo_in_boot_state_hangs_nothing() {
        fixture; manifest a; manifest_b_own_base
        local id; id=$(sha img/manifests/a.json)
        mkfifo "img/boot-state/$id.tries-0"
        activate a b
        timed_select
        expect_rejected_in a tries-exhausted 'every try'
        [ "$(jq -r .selected.name sel.json)" = b ] || fail "b not selected"
        rm "img/boot-state/$id.tries-0"
        # The temporary name kos_write_file_atomic_at uses, taken by a FIFO:
        # exec keeps the pid, so the name is the one kos will pick.
        local rc=0
        timeout 5 bash -c 'mkfifo "img/boot-state/.tmp-$1.tries-2-$$" && exec "$KOS" activate img a --tries 2' _ "$id" || rc=$?
        [ "$rc" = 0 ] || fail "kos activate --tries exited $rc (124 is a hang)"
        [ -f "img/boot-state/$id.tries-2" ] || fail "no tries-2 state: $(ls img/boot-state)"
        rc=0; timeout 5 bash -c 'mkfifo "img/.tmp-active-$$" && exec "$KOS" activate img b' || rc=$?
        [ "$rc" = 0 ] || fail "kos activate exited $rc (124 is a hang)"
        [ "$(head -1 img/active)" = b ] || fail "active: $(cat img/active)"
}

test_fifo_symlink_or_device_as_component_is_component_not_regular() {
        fixture; manifest a; manifest_b_own_base
        local base; base=$(sha base.img)
        activate a b
        for kind in fifo symlink device; do
                rm -f "img/components/$base"
                case $kind in
                fifo) mkfifo "img/components/$base" ;;
                symlink) ln -s ../../base.img "img/components/$base" ;;
                device) mknod "img/components/$base" c 1 3 2>/dev/null || { echo "no mknod (not root): device skipped" >&2; continue; } ;;
                esac
                timed_select
                expect_rejected_in a component-not-regular 'not a regular file\|symlink\|special file'
                [ "$(jq -r .selected.name sel.json)" = b ] || fail "$kind: b not selected"
        done
        rm -f "img/components/$base" && mkfifo "img/components/$base"
        local rc=0; timeout 5 "$KOS" gc img --keyring keyring >/dev/null 2>&1 || rc=$?
        [ "$rc" != 124 ] || fail "kos gc hung on a FIFO in components/"
}
