# In-place encryption of a plain DataFS (system/datafs-encrypt.h;
# docs/system-kernel.md, "In-place encryption of a plain DataFS"): a device
# whose release kept the DataFS plain (ext4 over the whole partition, with
# the user's files) boots a release whose signed cmdline says
# kos.datafs=luks2. One disk and one TPM go through four boots:
#   1. the System Kernel's init shrinks the ext4, marks the encryption
#      pending and defines the DataFS generation counter in the TPM; the
#      power is cut (QEMU killed) at the console line that says so, while
#      the key is sealed (some 1.2 s under TCG), before the LUKS2 header is
#      written: a plain ext4, the counter defined;
#   2. the next boot takes that for a cut encryption, not a planted ext4
#      (the TPM's conversion-pending marker), begins it again, writes the
#      LUKS2 header and starts encrypting; the power is cut at its first
#      progress line (after one 16 MiB hotzone of 15: the encryption of 240
#      MiB takes some 5 s under TCG, so the cut lands in the middle);
#   3. the next boot resumes the encryption, finishes it, opens the DataFS:
#      every file is there, byte for byte;
#   4. a later boot opens it as any LUKS2 DataFS.

# shellcheck source=system-lib.sh
. "$ROOT/tests/vm/system-lib.sh"

# The small root's /sbin/init: reports /data, compares /data/blob with the
# copy /blob.ref the root image carries, prints /data/proof; powers off.
encrypt_root_init() { # OUT
        cat >encrypt-init.c <<'C'
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>
static int same(const char *a, const char *b, long *bytes) {
        static char x[1 << 16], y[1 << 16];
        FILE *f = fopen(a, "re"), *g = fopen(b, "re");
        size_t n, m;
        int r = f && g;
        *bytes = 0;
        while (r && (n = fread(x, 1, sizeof x, f)) > 0) {
                m = fread(y, 1, sizeof y, g);
                r = n == m && memcmp(x, y, n) == 0;
                *bytes += (long)n;
        }
        if (r && fread(y, 1, 1, g) != 0)
                r = 0;
        if (f)
                fclose(f);
        if (g)
                fclose(g);
        return r;
}
int main(void) {
        char line[512];
        long bytes;
        FILE *m = fopen("/proc/mounts", "re");
        while (m && fgets(line, sizeof line, m))
                if (strstr(line, " /data "))
                        printf("KOS-TEST-ROOT mount %s", line);
        if (m)
                fclose(m);
        FILE *p = fopen("/data/proof", "re");
        if (p && fgets(line, sizeof line, p))
                printf("KOS-TEST-ROOT proof %s", line);
        if (p)
                fclose(p);
        if (same("/data/blob", "/blob.ref", &bytes))
                printf("KOS-TEST-ROOT blob intact (%ld bytes)\n", bytes);
        else
                printf("KOS-TEST-ROOT blob differs or is missing\n");
        printf("KOS-TEST-SYSTEM done\n");
        fflush(stdout);
        sync();
        reboot(RB_POWER_OFF);
        return 0;
}
C
        gcc -static -Os -o "$1" encrypt-init.c
}

# plain_datafs DISK: the DataFS (the disk's second partition) as a release
# with kos.datafs=plain left it: ext4 over the whole partition, holding
# /proof and /blob (a copy of root/blob.ref). The blob is written after a
# filler that is then removed, so it lies beyond the size the ext4 is shrunk
# to and resize2fs has to move it.
plain_datafs() {
        local size
        size=$(partx -g -o SECTORS -n 2 "$1")
        mkdir -p plain && tr "\\0" x </dev/zero | head -c $(((size / 2048 - 64) << 20)) >plain/filler
        echo "written under kos.datafs=plain" >plain/proof
        rm -f data.part && mkfs.ext4 -q -F -L KOS-DATA -d plain data.part "$((size / 2048))M"
        debugfs -w -R "write root/blob.ref blob" data.part >/dev/null 2>&1 || fail "debugfs cannot write the blob"
        debugfs -w -R "rm filler" data.part >/dev/null 2>&1 || fail "debugfs cannot remove the filler"
        debugfs -R "dump blob blob.check" data.part >/dev/null 2>&1 && cmp -s blob.check root/blob.ref ||
                fail "the blob on the plain DataFS is not root/blob.ref (no room?)"
        local last
        last=$(debugfs -R "blocks blob" data.part 2>/dev/null | tr ' ' '\n' | sort -n | tail -1)
        echo "  the blob's last block: $last of $(dumpe2fs -h data.part 2>/dev/null | sed -n 's/^Block count: *//p')" >&2
        disk_part_put "$1" 2 data.part
}

# tpm_nv_indexes DIR: the NV indexes defined in the swtpm state DIR (the
# VM's TPM, stopped), one a line, as tpm2_getcap lists them.
tpm_nv_indexes() {
        swtpm_host_start "$1"
        TPM2TOOLS_TCTI=swtpm:path=$PWD/$1/host.sock tpm2_getcap handles-nv-index | sed -n 's/^- //p'
        swtpm_stop "$1"
}

test_datafs_plain_ext4_encrypted_in_place_begins_again_after_a_cut_before_its_header_resumes_after_a_cut_during_it_and_keeps_every_byte() {
        mini_fixture
        mkdir -p root/sbin root/data root/run root/dev && encrypt_root_init root/sbin/init
        head -c 24M /dev/urandom >root/blob.ref
        mksquashfs root root.img -quiet -noappend >/dev/null
        SYS_CMDLINE="$SYS_CMDLINE kos.datafs=luks2" mini_manifest datafs root=root.img
        DATA_MIB=256 imagefs_disk img disk.img "$IMAGEFS_UUID"
        plain_datafs disk.img

        echo "  boot 1: the power is cut once the generation counter is defined, before the LUKS2 header" >&2
        vm_swtpm_start tpm
        vm_run_kernel console.log "${VM_TIMEOUT:-300}" 'DataFS /dev/vda2: DataFS generation [0-9]+ \(TPM NV 0x01004b44\), .*: sealing its key' \
                "${VM_TPM_ARGS[@]}" || true
        swtpm_stop tpm
        grep -aE 'kos-system|KOS-TEST' console.log | sed 's/^/  | /' >&2
        mv console.log early-cut.log
        expect_in early-cut.log 'DataFS /dev/vda2: DataFS generation 1 \(TPM NV 0x01004b44\), the encryption in place marked pending \(NV 0x01004b45\): sealing its key'
        ! grep -aq 'LUKS2 header written' early-cut.log || fail "the power cut came after the LUKS2 header was written"
        disk_part_get disk.img 2 early-cut.part
        [ "$(blkid -p -o value -s TYPE early-cut.part)" = ext4 ] || fail "not the plain ext4 after the cut: $(blkid -p early-cut.part)"
        tpm_nv_indexes tpm >early-cut.nv
        grep -qi '^0x1004b44' early-cut.nv || fail "no generation counter after the cut: $(cat early-cut.nv)"
        grep -qi '^0x1004b45' early-cut.nv || fail "no conversion-pending marker after the cut: $(cat early-cut.nv)"

        echo "  boot 2: begins again; the power is cut at the first progress line" >&2
        vm_swtpm_start tpm
        vm_run_kernel console.log "${VM_TIMEOUT:-300}" 'DataFS /dev/vda2: encrypting in place: [0-9]+ of' \
                "${VM_TPM_ARGS[@]}" || true
        swtpm_stop tpm
        grep -aE 'kos-system|KOS-TEST' console.log | sed 's/^/  | /' >&2
        mv console.log cut.log
        ! grep -aq 'locked' cut.log || fail "the plain ext4 was locked: $(grep -a 'locked' cut.log)"
        expect_in cut.log 'DataFS /dev/vda2: an encryption in place was cut before its header was written: starting it again'
        expect_in cut.log 'DataFS /dev/vda2: a plain ext4 of a release before kos.datafs=luks2, on a device whose DataFS was never encrypted: encrypting it in place'
        expect_in cut.log 'DataFS /dev/vda2: shrinking its ext4 to [0-9]+K for the LUKS2 header'
        expect_in cut.log 'DataFS /dev/vda2: DataFS generation 1 \(TPM NV 0x01004b44\)'
        expect_in cut.log 'DataFS /dev/vda2: LUKS2 header written \(data offset 16 MiB\): encrypting in place'
        expect_in cut.log 'DataFS /dev/vda2: encrypting in place: [0-9]+ of [0-9]+ MiB'
        ! grep -aq 'encrypted in place' cut.log || fail "the power cut came after the encryption had finished"
        disk_part_get disk.img 2 cut.part
        [ "$(blkid -p -o value -s TYPE cut.part)" = crypto_LUKS ] || fail "no LUKS2 header after the cut: $(blkid -p cut.part)"
        cryptsetup luksDump cut.part >cut-dump.txt
        grep -qE 'Requirements:.*reencrypt' cut-dump.txt || fail "the cut left no encryption in progress: $(cat cut-dump.txt)"
        tpm_nv_indexes tpm >cut.nv
        ! grep -qi '^0x1004b45' cut.nv || fail "the conversion-pending marker outlived the LUKS2 header: $(cat cut.nv)"
        ! grep -qi '^0x1004b46' cut.nv || fail "the header-being-written marker outlived the header's load: $(cat cut.nv)"

        echo "  boot 3: resumes and finishes the encryption, opens it" >&2
        vm_swtpm_start tpm
        KEEP_DISK=1 mini_boot "${VM_TPM_ARGS[@]}"
        swtpm_stop tpm
        mv console.log resume.log
        expect_in resume.log 'DataFS /dev/vda2: LUKS2 encryption in place in progress: resuming it'
        expect_in resume.log 'DataFS /dev/vda2: encrypted in place \([0-9.]+ s\)'
        expect_in resume.log 'DataFS /dev/mapper/kos-data mounted at /data \(LUKS2, key sealed to the verified chain\)'
        expect_in resume.log 'KOS-TEST-ROOT proof written under kos.datafs=plain'
        expect_in resume.log 'KOS-TEST-ROOT blob intact \(25165824 bytes\)'

        echo "  boot 4: a LUKS2 DataFS like any other" >&2
        vm_swtpm_start tpm
        KEEP_DISK=1 mini_boot "${VM_TPM_ARGS[@]}"
        swtpm_stop tpm
        mv console.log after.log
        expect_in after.log 'DataFS /dev/vda2: LUKS2 opened with the key the TPM unsealed'
        ! grep -aq 'resuming' after.log || fail "resumed again"
        expect_in after.log 'KOS-TEST-ROOT blob intact \(25165824 bytes\)'
        disk_part_get disk.img 2 after.part
        cryptsetup luksDump after.part >after-dump.txt
        ! grep -qE 'Requirements:.*reencrypt' after-dump.txt || fail "an encryption is still in progress"
        grep -qE 'cipher:[[:space:]]*aes-xts-plain64' after-dump.txt || fail "not aes-xts-plain64: $(cat after-dump.txt)"
        grep -qE '^  0: systemd-tpm2' after-dump.txt || fail "no systemd-tpm2 token"
        ! grep -aq 'written under kos.datafs=plain' after.part || fail "the plain text is still on the partition"
}


# A cut while the first LUKS2 header of an encryption in place is written
# can tear the head so that libblkid finds neither the ext4 (its superblock
# at byte 1024 lies in the LUKS2 binary header's padding) nor LUKS2 (its
# magic not landed). With the TPM's header-being-written marker there, as
# the encryption's begin leaves it then, such a partition is locked, never
# formatted as an empty one, and not a byte of it is written.
test_datafs_head_torn_while_its_first_luks2_header_was_written_is_locked_and_never_formatted() {
        mini_fixture
        mkdir -p root/sbin root/data root/run root/dev && encrypt_root_init root/sbin/init
        mksquashfs root root.img -quiet -noappend >/dev/null
        SYS_CMDLINE="$SYS_CMDLINE kos.datafs=luks2" mini_manifest datafs root=root.img
        DATA_MIB=64 imagefs_disk img disk.img "$IMAGEFS_UUID"
        local size
        size=$(partx -g -o SECTORS -n 2 disk.img)
        mkdir -p plain && echo "written under kos.datafs=plain" >plain/proof
        rm -f data.part && mkfs.ext4 -q -F -L KOS-DATA -d plain data.part "$((size / 2048))M"
        # The torn write: the binary header's zero padding landed over the
        # ext4 superblock (sectors 2 and 3), the sector with its magic did not.
        dd if=/dev/zero of=data.part bs=512 seek=2 count=2 conv=notrunc status=none
        [ -z "$(blkid -p -o value -s TYPE data.part)" ] || fail "libblkid still finds something: $(blkid -p data.part)"
        disk_part_put disk.img 2 data.part
        swtpm_host_start tpm
        host_tpm2 tpm2_nvdefine 0x01004b46 -C o -s 1 -a "authread|authwrite|no_da" \
                >/dev/null || fail "cannot define the header-being-written marker"
        swtpm_stop tpm
        vm_swtpm_start tpm
        KEEP_DISK=1 mini_boot "${VM_TPM_ARGS[@]}"
        swtpm_stop tpm
        expect_in console.log 'DataFS /dev/vda2: locked: libblkid finds nothing on it, and the TPM says a power cut fell while its LUKS2 header was first written over its plain ext4 \(header-being-written marker, TPM NV 0x01004b46\); its data is still there: never formatted over'
        ! grep -aq 'formatted as LUKS2' console.log || fail "the torn partition was formatted"
        disk_part_get disk.img 2 after.part
        cmp -s data.part after.part || fail "the partition was written"
}
