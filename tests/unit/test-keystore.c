/* SPDX-License-Identifier: MIT */
/* The System Kernel's key store (system/keystore.c): where the TPM provider
 * finds sealed-key files. No TPM here (main.c selects none): a file that is
 * found is refused as "this machine has none", which tells found from not
 * found. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keystore.h"
#include "test.h"
#include "tpm-policy.h"
#include "util.h"

/* root/elsewhere/<key_id> holds bytes that are not a sealed-key file. */
static void put_elsewhere(const char *root, const char *key_id) {
        char path[512];

        snprintf(path, sizeof path, "%s/elsewhere", root);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/elsewhere/%s", root, key_id);
        FILE *f = fopen(path, "we");
        if (f) {
                fputs("not a sealed key\n", f);
                fclose(f);
        }
}

/* ImageFS sealed-keys/ is opened beneath the ImageFS, never through a
 * symlink: one pointing elsewhere is refused (the boot stops at find key),
 * not followed, and not taken as "no such key" (which would ask the next
 * provider). */
TEST(keystore_refuses_a_symlinked_sealed_keys_directory) {
        const char *root = test_tmpdir();
        char link[512];
        struct kos_error error = KOS_ERROR_NULL;
        uint8_t *key = NULL;
        size_t len;

        put_elsewhere(root, "appkey");
        snprintf(link, sizeof link, "%s/sealed-keys", root);
        CHECK(symlink("elsewhere", link) == 0);
        _cleanup_close_ int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(root_fd >= 0);
        kos_key_provider_tpm_set_imagefs(root_fd);
        int r = kos_key_provider_tpm.lookup("appkey", &key, &len, &error);
        kos_key_provider_tpm_set_imagefs(-1);
        CHECK(r == -ELOOP);
        CHECK(strstr(error.msg, "sealed-keys") && strstr(error.msg, "symlink"));
        CHECK(!key);
}

/* The same file in a real sealed-keys/ is read (and refused only for what
 * it is); a symlinked file in it is refused; no sealed-keys/ is no key. */
TEST(keystore_reads_sealed_keys_beneath_the_imagefs_only) {
        const char *root = test_tmpdir();
        char path[512];
        struct kos_error error = KOS_ERROR_NULL;
        uint8_t *key = NULL;
        size_t len;

        _cleanup_close_ int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(root_fd >= 0);
        kos_key_provider_tpm_set_imagefs(root_fd);
        CHECK(kos_key_provider_tpm.lookup("appkey", &key, &len, &error) == -ENOKEY);
        put_elsewhere(root, "appkey");
        snprintf(path, sizeof path, "%s/elsewhere", root);
        char real[512];
        snprintf(real, sizeof real, "%s/sealed-keys", root);
        CHECK(rename(path, real) == 0);
        int r = kos_key_provider_tpm.lookup("appkey", &key, &len, &error);
        CHECK(r == -EBADMSG && strstr(error.msg, "sealed-keys/appkey is not a sealed-key file"));
        snprintf(path, sizeof path, "%s/sealed-keys/linked", root);
        CHECK(symlink("appkey", path) == 0);
        r = kos_key_provider_tpm.lookup("linked", &key, &len, &error);
        kos_key_provider_tpm_set_imagefs(-1);
        CHECK(r == -ELOOP && strstr(error.msg, "symlink"));
        CHECK(!key);
}

/* The leave event: once the Boot Kernel's handoff says it extended PCR 15
 * with the marker, the System Kernel extends the leave event or stops, with
 * or without a key unsealed: PCR 15 left at the marker would let the
 * running system unseal (a TPM driver loaded later by the root finds it). */
TEST(leave_event_is_extended_or_the_boot_stops_once_the_marker_was_handed_on) {
        CHECK(kos_leave_verdict(true, 0, 0) == KOS_LEAVE_EXTENDED);
        CHECK(kos_leave_verdict(true, 0, 2) == KOS_LEAVE_EXTENDED);
        CHECK(kos_leave_verdict(true, -ENODEV, 0) == KOS_LEAVE_STOP);
        CHECK(kos_leave_verdict(true, -EIO, 0) == KOS_LEAVE_STOP);
        CHECK(kos_leave_verdict(true, -EACCES, 1) == KOS_LEAVE_STOP);
}

/* Without the marker (the Boot Kernel had no TPM), PCR 15 cannot open a
 * sealed key: no TPM is fine, a failed extend only warns, unless a key was
 * given out (then it stops, as before). */
TEST(leave_event_without_the_marker_stops_only_after_a_key_was_unsealed) {
        CHECK(kos_leave_verdict(false, 0, 0) == KOS_LEAVE_EXTENDED);
        CHECK(kos_leave_verdict(false, -ENODEV, 0) == KOS_LEAVE_NO_TPM);
        CHECK(kos_leave_verdict(false, -EIO, 0) == KOS_LEAVE_WARN);
        CHECK(kos_leave_verdict(false, -EIO, 1) == KOS_LEAVE_STOP);
}

/* A sealed-key file of the signed-policy scheme (KOSSEAL2) is a sealed key
 * like a KOSSEAL1 one: found, parsed before any TPM is asked (no TPM here:
 * "this machine has none"), and one cut short is not a sealed-key file. */
TEST(keystore_takes_a_signed_policy_sealed_key_file_and_refuses_a_broken_one) {
        const char *root = test_tmpdir();
        struct kos_authorized_key k = {.public_len = 3, .private_len = 2};
        uint8_t bytes[KOS_AUTHORIZED_KEY_MAX], *key = NULL;
        char path[512];
        struct kos_error error = KOS_ERROR_NULL;
        size_t len;

        k.policy_key_name[1] = 0x0b;
        memcpy(k.public_area, "pub", 3), memcpy(k.private_area, "pr", 2);
        int n = kos_authorized_key_format(&k, bytes, sizeof bytes);
        CHECK(n > 0);
        snprintf(path, sizeof path, "%s/sealed-keys", root);
        CHECK(mkdir(path, 0755) == 0);
        _cleanup_close_ int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(root_fd >= 0 && dir_fd >= 0);
        CHECK(kos_write_file_atomic_at(dir_fd, "signed", bytes, (size_t)n, 0644) == 0);
        CHECK(kos_write_file_atomic_at(dir_fd, "cut", bytes, (size_t)n - 1, 0644) == 0);
        kos_key_provider_tpm_set_imagefs(root_fd);
        int r = kos_key_provider_tpm.lookup("signed", &key, &len, &error);
        int r_cut = kos_key_provider_tpm.lookup("cut", &key, &len, &error);
        kos_key_provider_tpm_set_imagefs(-1);
        CHECK(r == -ENODEV);
        CHECK(r_cut == -EBADMSG && strstr(error.msg, "sealed-keys/cut is not a sealed-key file"));
        CHECK(!key);
}
