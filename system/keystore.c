/* SPDX-License-Identifier: MIT */
#include "keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "layout.h"
#include "tpm-policy.h"
#include "tpm-seal.h"
#include "util.h"

static int imagefs_fd = -1;
static unsigned tpm_unsealed;
static const char *policy_key_path = KOS_TPM_POLICY_KEY_PATH;

/* Keys sealed the old way and sealed again to the signed policies at this
 * boot, waiting to replace their files (kos_key_provider_tpm_write_migrated()). */
#define MAX_MIGRATED 16
static struct migrated {
        char key_id[KOS_NAME_MAX + 1];
        uint8_t data[KOS_AUTHORIZED_KEY_MAX];
        size_t len;
} migrated[MAX_MIGRATED];
static unsigned n_migrated;
static char migrate_failure[480]; /* why the last migration did not happen */

void kos_key_provider_tpm_set_policy_key(const char *path) { policy_key_path = path; }

void kos_key_provider_tpm_set_imagefs(int imagefs_root_fd) { imagefs_fd = imagefs_root_fd; }
unsigned kos_key_provider_tpm_unsealed(void) { return tpm_unsealed; }

/* The sealed-key file of key_id, beneath the ImageFS like every path in it:
 * sealed-keys/ and the file each opened without following a symlink
 * (-ELOOP: refused, never "no such key"). -ENOKEY when there is none.
 * Its bytes, not yet parsed, in *ret. */
static int read_sealed(const char *key_id, char **ret, size_t *ret_len, struct kos_error *ret_error) {
        if (imagefs_fd < 0)
                return -ENOKEY;
        _cleanup_close_ int dirfd = openat(imagefs_fd, KOS_SEALED_KEY_DIR,
                                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dirfd < 0 && errno == ENOENT)
                return -ENOKEY;
        if (dirfd < 0) {
                int r = errno == ENOTDIR ? -ELOOP : -errno; /* O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR */
                return kos_error_set(ret_error, r, "ImageFS " KOS_SEALED_KEY_DIR "/ is %s: refused",
                                     r == -ELOOP ? "a symlink or not a directory" : strerror(-r));
        }
        int r = kos_read_file_at(dirfd, key_id, KOS_SEALED_KEY_MAX, ret, ret_len);
        if (r == -ENOENT)
                return -ENOKEY;
        if (r < 0)
                return kos_error_set(ret_error, r, "ImageFS " KOS_SEALED_KEY_DIR "/%s: %s", key_id,
                                     r == -ELOOP ? "a symlink: refused" : strerror(-r));
        return r;
}

/* What signed policies need: the vendor's policy key from this initrd (the
 * signed UKI carries it), and the release's signed policy from the ImageFS
 * (not trusted: the TPM checks its signature). -ENOENT when either is
 * absent, with the reason in error. */
int kos_key_provider_tpm_read_policy(struct kos_tpm_ecc_point *ret_key, struct kos_signed_policy *ret_policy,
                                     struct kos_error *ret_error) {
        _cleanup_free_ char *pem = NULL, *signed_policy = NULL;
        size_t pem_len, len;
        int r = kos_read_file_at(AT_FDCWD, policy_key_path, 4096, &pem, &pem_len);

        if (r < 0 || kos_tpm_ecc_point_from_pem(pem, pem_len, ret_key) < 0)
                return kos_error_set(ret_error, r < 0 ? r : -EINVAL, "%s: %s", policy_key_path,
                                     r < 0 ? strerror(-r) : "not a NIST P-256 public key");
        r = imagefs_fd < 0 ? -ENOENT
                           : kos_read_file_at(imagefs_fd, KOS_TPM_POLICY_FILE, KOS_SIGNED_POLICY_MAX, &signed_policy,
                                              &len);
        if (r < 0 || kos_signed_policy_parse((const uint8_t *)signed_policy, len, ret_policy) < 0)
                return kos_error_set(ret_error, r < 0 ? r : -EBADMSG, "ImageFS " KOS_TPM_POLICY_FILE ": %s",
                                     r < 0 ? strerror(-r) : "not a signed-policy file");
        return 0;
}

/* A key sealed the old way opened: sealed again to the signed policies when
 * this initrd and the ImageFS have them, kept for write_migrated(). A
 * failure only costs the migration (the key is open), so it is logged by
 * the caller through error and the boot goes on. */
static void migrate(struct kos_tpm *t, const char *key_id, const uint8_t *data, size_t len) {
        struct kos_tpm_ecc_point policy_key;
        struct kos_signed_policy policy;
        struct kos_authorized_key sealed;

        if (n_migrated >= MAX_MIGRATED || kos_key_provider_tpm_read_policy(&policy_key, &policy, NULL) < 0)
                return;
        struct kos_error reseal_error = KOS_ERROR_NULL;
        if (kos_tpm_reseal_authorized(t, data, len, &policy_key, &policy, &sealed, &reseal_error) < 0) {
                /* %.399s: cut where its buffer cut it before */
                snprintf(migrate_failure, sizeof migrate_failure, "key %s not migrated to the signed policies: %.399s",
                         key_id, reseal_error.msg);
                return;
        }
        struct migrated *m = &migrated[n_migrated];
        int n = kos_authorized_key_format(&sealed, m->data, sizeof m->data);
        if (n < 0 || strlen(key_id) >= sizeof m->key_id)
                return;
        m->len = (size_t)n;
        snprintf(m->key_id, sizeof m->key_id, "%s", key_id);
        n_migrated++;
}

/* A sealed-key file of either scheme, parsed before any TPM is asked. */
struct sealed_file {
        bool authorized; /* KOSSEAL2: signed policies; else KOSSEAL1: PCR values */
        struct kos_authorized_key authorized_key;
        struct kos_sealed_key pcr_key;
};

static int parse_sealed(const char *key_id, const char *file, size_t len, struct sealed_file *ret,
                        struct kos_error *ret_error) {
        ret->authorized = kos_authorized_key_parse((const uint8_t *)file, len, &ret->authorized_key) == 0;
        if (!ret->authorized && kos_sealed_key_parse((const uint8_t *)file, len, &ret->pcr_key) < 0)
                return kos_error_set(ret_error, -EBADMSG, "ImageFS " KOS_SEALED_KEY_DIR "/%s is not a sealed-key file",
                                     key_id);
        return 0;
}

static int unseal_file(struct kos_tpm *t, const char *key_id, const struct sealed_file *f,
                       uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX], size_t *ret_len, struct kos_error *ret_error) {
        struct kos_tpm_ecc_point policy_key;
        struct kos_signed_policy policy;
        int r;

        if (f->authorized) {
                if ((r = kos_key_provider_tpm_read_policy(&policy_key, &policy, ret_error)) < 0)
                        return r;
                r = kos_tpm_unseal_authorized(t, &f->authorized_key, &policy_key, &policy, ret_data, ret_len,
                                              ret_error);
        } else if ((r = kos_tpm_unseal(t, &f->pcr_key, ret_data, ret_len, ret_error)) == 0)
                migrate(t, key_id, ret_data, *ret_len);
        return r;
}

static int tpm_lookup(const char *key_id, uint8_t **ret, size_t *ret_len, struct kos_error *ret_error) {
        _cleanup_free_ char *file = NULL;
        _cleanup_free_ struct sealed_file *parsed = NULL;
        size_t file_len, len;
        struct kos_tpm t;
        uint8_t data[KOS_TPM_SEAL_DATA_MAX];

        if (!kos_name_is_valid(key_id))
                return -EINVAL;
        int r = read_sealed(key_id, &file, &file_len, ret_error);
        if (r < 0)
                return r;
        if (!(parsed = malloc(sizeof *parsed)))
                return -ENOMEM;
        if ((r = parse_sealed(key_id, file, file_len, parsed, ret_error)) < 0)
                return r;
        if ((r = kos_tpm_open(&t)) < 0)
                return kos_error_set(ret_error, r, "the key is sealed in a TPM, and %s",
                                     r == -ENODEV ? "this machine has none" : strerror(-r));
        r = unseal_file(&t, key_id, parsed, data, &len, ret_error);
        kos_tpm_close(&t);
        if (r < 0)
                return r;
        *ret = malloc(len);
        if (!*ret) {
                explicit_bzero(data, sizeof data);
                return -ENOMEM;
        }
        memcpy(*ret, data, len);
        explicit_bzero(data, sizeof data);
        *ret_len = len;
        tpm_unsealed++;
        return 0;
}

int kos_key_provider_tpm_write_migrated(const char *imagefs_mount, char *ret_message, size_t message_size) {
        unsigned written = 0;
        int r = 0;

        snprintf(ret_message, message_size, "%s", migrate_failure);
        if (n_migrated == 0)
                return migrate_failure[0] ? -EPERM : 0;
        /* The ImageFS is read-only in this initrd; open for the few renames. */
        if (mount(NULL, imagefs_mount, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                r = -errno;
                snprintf(ret_message, message_size, "cannot remount the ImageFS read-write: %s", strerror(-r));
                return r;
        }
        _cleanup_close_ int dirfd = open(imagefs_mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int keys = dirfd < 0 ? -1 : openat(dirfd, KOS_SEALED_KEY_DIR,
                                                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        for (unsigned i = 0; i < n_migrated && r == 0; i++) {
                /* Atomic: a power cut leaves the old file or the new one. */
                r = keys < 0 ? -errno : kos_write_file_atomic_at(keys, migrated[i].key_id, migrated[i].data,
                                                                 migrated[i].len, 0644);
                if (r == 0)
                        written++;
        }
        if (mount(NULL, imagefs_mount, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 &&
            r == 0)
                r = -errno;
        if (r < 0)
                snprintf(ret_message, message_size, "migrated %u of %u keys to the signed policies, then: %s", written,
                         n_migrated, strerror(-r));
        else
                snprintf(ret_message, message_size,
                         "%u key%s sealed to PCR values migrated to the signed policies (ImageFS " KOS_SEALED_KEY_DIR
                         "/)", written, written == 1 ? "" : "s");
        n_migrated = 0;
        return r;
}

const struct kos_key_provider kos_key_provider_tpm = {
        .name = "TPM (sealed to the verified chain, ImageFS " KOS_SEALED_KEY_DIR "/)",
        .short_name = "TPM",
        .lookup = tpm_lookup,
};

static int initrd_lookup(const char *key_id, uint8_t **ret, size_t *ret_len, struct kos_error *ret_error) {
        char *data = NULL;
        size_t len;

        if (!kos_name_is_valid(key_id))
                return -EINVAL;
        _cleanup_close_ int dirfd = open(KOS_INITRD_KEY_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return errno == ENOENT ? -ENOKEY : -errno;
        int r = kos_read_file_at(dirfd, key_id, KOS_KEY_MAX, &data, &len);
        if (r == -ENOENT)
                return -ENOKEY;
        if (r < 0)
                return kos_error_set(ret_error, r, KOS_INITRD_KEY_DIR "/%s: %s", key_id, strerror(-r));
        *ret = (uint8_t *)data;
        *ret_len = len;
        return 0;
}

const struct kos_key_provider kos_key_provider_initrd = {
        .name = "initrd key store (" KOS_INITRD_KEY_DIR ", development)",
        .short_name = "initrd key store",
        .lookup = initrd_lookup,
        .development = true,
};

int kos_key_lookup(const struct kos_key_provider *const *providers, const char *key_id, uint8_t **ret, size_t *ret_len,
                   const struct kos_key_provider **ret_provider, struct kos_error *ret_error) {
        int r = -ENOKEY;

        for (; *providers; providers++) {
                struct kos_error error = KOS_ERROR_NULL;

                *ret_provider = *providers;
                r = (*providers)->lookup(key_id, ret, ret_len, &error);
                if (r == -ENOKEY)
                        continue;
                if (r < 0)
                        return kos_error_set(ret_error, r, "%s", error.msg[0] ? error.msg : strerror(-r));
                return r;
        }
        return kos_error_set(ret_error, r, "no such key");
}

enum kos_leave_verdict kos_leave_verdict(bool marker_handed_on, int extend_result, unsigned unsealed) {
        if (extend_result >= 0)
                return KOS_LEAVE_EXTENDED;
        /* PCR 15 may hold the marker: left there, whatever finds the TPM
         * later (root loading a TPM driver this initrd lacks) could unseal. */
        if (marker_handed_on || unsealed > 0)
                return KOS_LEAVE_STOP;
        return extend_result == -ENODEV ? KOS_LEAVE_NO_TPM : KOS_LEAVE_WARN;
}
