# The Boot Kernel against a hostile ImageFS: files of any type where the
# ImageFS expects regular files (mkfs.ext4 -d copies FIFOs as they are).
# No such file may hang the boot; selection goes on to the next manifest.

# selection_seconds: what "selection took N s" says on the console.
selection_seconds() { sed -n 's/.*selection took \([0-9.]*\) s.*/\1/p' console.log | tail -n 1; }

test_fifo_as_manifest_is_rejected_and_the_next_manifest_boots_within_5s() {
        vm_fixture
        vm_manifest a; vm_manifest b
        rm img/manifests/a.json && mkfifo img/manifests/a.json
        activate a b
        vm_boot
        expect_log 'manifest a: rejected: manifest-missing: .*not a regular file'
        expect_booted b
        local s; s=$(selection_seconds)
        [ -n "$s" ] && awk -v s="$s" 'BEGIN { exit !(s < 5) }' || fail "selection took '$s' s"
}

test_fifo_as_active_fails_fast_with_a_reason_and_no_system_kernel() {
        vm_fixture
        vm_manifest a
        rm -f img/active && mkfifo img/active
        VM_TIMEOUT=60 vm_boot
        expect_log 'active list unreadable'
        expect_log 'reboot: System halted'
        [ -z "$(system_cmdline)" ] || fail "a System Kernel ran"
}
