# Keys sealed to the verified chain (docs/tpm.md, "Sealed keys"), on the
# small root: the Boot Kernel's marker lets the System Kernel's init unseal
# an encrypted component's key; the same System Kernel, initrd, disk and TPM
# started without the Boot Kernel cannot; and after the leave event, the
# running system's root cannot either.

# The small root's /sbin/init for this test: says whether the encrypted
# layer is there, runs `kos key unseal` (the static kos) on the sealed-key
# file as root, then prints KOS-TEST-SYSTEM (the end of the run) and powers
# off. Built here: the stand-in init of tests/vm cannot run programs.
sealed_root_init() { # OUT
        cat >sealed-init.c <<'C'
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
        char line[128] = "absent";
        FILE *f = fopen("/etc/kos-secret", "re");
        if (f) {
                if (!fgets(line, sizeof line, f))
                        strcpy(line, "unreadable");
                line[strcspn(line, "\n")] = '\0';
                fclose(f);
        }
        printf("KOS-TEST-ROOT secret=%s uid=%d\n", line, (int)getuid());
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
                dup2(1, 2);
                execl("/bin/kos", "kos", "key", "unseal", "/etc/kos-sealed/appkey", (char *)NULL);
                _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        printf("KOS-TEST-ROOT unseal-exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        printf("KOS-TEST-SYSTEM done\n");
        fflush(stdout);
        sync();
        reboot(RB_POWER_OFF);
        return 0;
}
C
        gcc -static -Os -o "$1" sealed-init.c
}

# sealed_root_image: mini.img, the small root of these tests: its init
# (sealed_root_init), the static kos and the sealed-key file
# img/sealed-keys/appkey.
sealed_root_image() {
        rm -rf mini && mkdir -p mini/sbin mini/bin mini/etc/kos-sealed
        sealed_root_init mini/sbin/init
        cp "$ROOT/$BUILD/kos-static" mini/bin/kos
        cp img/sealed-keys/appkey mini/etc/kos-sealed/appkey
        mksquashfs mini mini.img -quiet -noappend >/dev/null
}

test_sealed_key_opens_in_the_verified_chain_only_and_never_after_the_leave_event() {
        mini_fixture
        # app: its key sealed in the TPM (not in the initrd); dev: its key
        # in the initrd's development key store.
        mkdir -p app/etc dev/etc && echo sealed-app-layer >app/etc/kos-secret && echo dev >dev/etc/kos-dev
        "$KOS" component build --type squashfs --encrypt appkey --keystore factory app app.img >/dev/null
        "$KOS" component build --type squashfs --encrypt devkey --keystore keystore dev dev.img >/dev/null
        "$KOS" mkinitrd --kernel-dir "$(vm_kernel_dir)" --keyring keyring --keystore keystore --output initrd >/dev/null
        [ ! -e keystore/appkey ] || fail "the sealed key is in the initrd's key store"
        # At the factory: sealed against the device's TPM from the host,
        # which is not in the boot's PCR state (PCR 15 is zero).
        swtpm_host_start tpm
        host_tpm "$KOS" key seal --key-file factory/appkey --output img/sealed-keys
        swtpm_stop tpm
        sealed_root_image
        mini_manifest sealed mini=mini.img app=app.img dev=dev.img
        imagefs_disk img disk.img "$IMAGEFS_UUID"

        vm_swtpm_start tpm
        vm_run_kernel console.log "${VM_TIMEOUT:-240}" "$MINI_DONE" "${VM_TPM_ARGS[@]}" || true
        swtpm_stop tpm
        grep -aE 'kos-boot|kos-system|KOS-TEST|kos:' console.log | sed 's/^/  | /' >&2
        expect_log 'kos-system .* component app: key appkey from the TPM \(sealed to the verified chain'
        expect_log 'component app: squashfs, LUKS2, re-hashed mounted'
        expect_log 'kos-system .* WARNING: component dev: key devkey from the initrd key store .*never on a production device'
        expect_log 'sealed keys: 1 unsealed; PCR 15 extended with the leave event "kos-system-initrd-leave"'
        expect_log 'KOS-TEST-ROOT secret=sealed-app-layer uid=0'
        # Root in the running system, same TPM: refused, and told why.
        expect_log 'cannot unseal /etc/kos-sealed/appkey: PCR 15 does not match the sealed policy \(TPM_RC_POLICY_FAIL\)'
        expect_log 'KOS-TEST-ROOT unseal-exit=1'
        expect_log 'kos-boot .* System Kernel command line: .* kos.tpm_marker=1'
        mv console.log chain.log

        # The same System Kernel and initrd, disk and TPM, without the Boot
        # Kernel: PCR 15 never got the marker.
        vm_swtpm_start tpm
        sys_boot_direct sealed "" "${VM_TPM_ARGS[@]}"
        swtpm_stop tpm
        expect_log "BOOT FAILED at step 'find key', component app: key id appkey \(TPM\): PCR 15 does not match the sealed policy \(TPM_RC_POLICY_FAIL\): it holds 0000000000000000"
        ! grep -q 'KOS-TEST-ROOT secret' console.log || fail "the root started without the key"
        ! grep -q 'kos-system .* component app: .* mounted' console.log || fail "the component was mounted"
        mv console.log direct.log

        # The handoff says the Boot Kernel extended the marker, and this
        # initrd finds no TPM (as if its driver were a module the root loads
        # later, to find PCR 15 still at the marker): the boot stops at the
        # leave event and nothing of the root runs. (A manifest whose keys
        # need no TPM, so that the boot gets that far.)
        mini_manifest nokey mini=mini.img dev=dev.img
        imagefs_disk img disk.img "$IMAGEFS_UUID"
        HANDOFF_TPM_MARKER=1 sys_boot_direct nokey
        expect_log "BOOT FAILED at step 'leave TPM': the Boot Kernel extended PCR 15 with the verified-boot marker \(kos.tpm_marker=1\), and this initrd finds no TPM"
        ! grep -q 'KOS-TEST-ROOT' console.log || fail "the root started with PCR 15 left at the marker"
}

# Secure Boot's PCR 7 in the policy (docs/tpm.md, "The policy"): the key is
# sealed on the host to PCR 7 as computed for the development db
# (sb_expected_pcr7: no boot, no device PCR read) plus the PCR 15 marker. The
# signed UKI of the Boot Kernel boots the same disk and TPM twice: with
# Secure Boot enforcing the System Kernel's init unseals it; with the empty
# variable store (setup mode: the firmware checks no signature, Secure Boot
# is off) the same UKI and Boot Kernel run, the marker is extended, and the
# key stays shut, the refusal naming PCR 7.
test_key_sealed_to_pcr7_and_15_opens_under_secure_boot_and_not_with_it_off() {
        mini_fixture
        mkdir -p app/etc && echo sealed-app-layer >app/etc/kos-secret
        "$KOS" component build --type squashfs --encrypt appkey --keystore factory app app.img >/dev/null
        local keys pcr7; keys=$(sb_keys); pcr7=$(sb_expected_pcr7 "$keys")
        echo "  PCR 7 expected under Secure Boot with the development keys: $pcr7" >&2
        swtpm_host_start tpm
        host_tpm "$KOS" key seal --key-file factory/appkey --pcrs 7,15 --pcr-value "7=$pcr7" \
                --output img/sealed-keys
        swtpm_stop tpm
        sealed_root_image
        mini_manifest sealed mini=mini.img app=app.img
        VM_BOOT_KERNEL=kos vm_mkboot --keyring keyring --output bootk --uki uki.efi \
                --cmdline "$VM_BOOT_APPEND" --sign-key "$keys/db.key" --sign-cert "$keys/db.crt" >/dev/null
        rm -rf esp && mkdir -p esp/EFI/BOOT && cp uki.efi esp/EFI/BOOT/BOOTX64.EFI
        local vars; vars=$(sb_enrolled_vars)

        # Secure Boot on.
        uefi_disk esp disk.img img "$IMAGEFS_UUID"
        cp "$vars" vars.fd
        vm_swtpm_start tpm
        ovmf_run console.log "${VM_TIMEOUT:-300}" "$MINI_DONE" vars.fd disk.img "${VM_TPM_ARGS[@]}" || true
        swtpm_stop tpm
        tr -d '\r' <console.log | grep -aE 'EFI stub|kos-boot .*(manifest|measured)|kos-system .*(key|sealed|BOOT)|KOS-TEST' | sed 's/^/  | /' >&2
        expect_log 'EFI stub: UEFI Secure Boot is enabled'
        expect_log 'kos-system .* component app: key appkey from the TPM \(sealed to the verified chain'
        expect_log 'KOS-TEST-ROOT secret=sealed-app-layer uid=0'
        # PCR 7 still matches in the running system; the leave event shuts it.
        expect_log 'cannot unseal /etc/kos-sealed/appkey: PCR 15 does not match the sealed policy'
        mv console.log secureboot-on.log

        # Secure Boot off: the same signed UKI, disk and TPM; a firmware in setup mode.
        uefi_disk esp disk.img img "$IMAGEFS_UUID"
        cp "$OVMF_VARS_EMPTY" vars-off.fd
        vm_swtpm_start tpm
        ovmf_run console.log "${VM_TIMEOUT:-300}" "$MINI_DONE" vars-off.fd disk.img "${VM_TPM_ARGS[@]}" || true
        swtpm_stop tpm
        tr -d '\r' <console.log | grep -aE 'EFI stub|kos-boot .*(manifest|measured)|kos-system .*(key|sealed|BOOT)|KOS-TEST' | sed 's/^/  | /' >&2
        ! grep -aq 'EFI stub: UEFI Secure Boot is enabled' console.log || fail "Secure Boot was on"
        expect_log 'kos-boot .*measured boot: PCR 8 extended with manifest sealed'
        expect_log "BOOT FAILED at step 'find key', component app: key id appkey \(TPM\): PCR 7 does not match the sealed policy \(TPM_RC_POLICY_FAIL\): it holds [0-9a-f]{16}\.\.\., the policy needs ${pcr7:0:16}\.\.\. \(Secure Boot is off"
        ! grep -aq 'KOS-TEST-ROOT secret' console.log || fail "the root started without the key"
        ! grep -aq 'kos-system .* component app: .* mounted' console.log || fail "the component was mounted"
}
