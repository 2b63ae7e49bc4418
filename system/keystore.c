/* SPDX-License-Identifier: MIT */
#include "keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "tpm-seal.h"
#include "util.h"

static int imagefs_fd = -1;
static unsigned tpm_unsealed;

void kos_key_provider_tpm_set_imagefs(int imagefs_root_fd) { imagefs_fd = imagefs_root_fd; }
unsigned kos_key_provider_tpm_unsealed(void) { return tpm_unsealed; }

/* The sealed-key file of key_id, beneath the ImageFS like every path in it:
 * sealed-keys/ and the file each opened without following a symlink
 * (-ELOOP: refused, never "no such key"). -ENOKEY when there is none. */
static int read_sealed(const char *key_id, struct kos_sealed_key *ret, char *error, size_t error_size) {
        _cleanup_free_ char *data = NULL;
        size_t len;

        if (imagefs_fd < 0)
                return -ENOKEY;
        _cleanup_close_ int dirfd = openat(imagefs_fd, KOS_SEALED_KEY_DIR,
                                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dirfd < 0 && errno == ENOENT)
                return -ENOKEY;
        if (dirfd < 0) {
                int r = errno == ENOTDIR ? -ELOOP : -errno; /* O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR */
                snprintf(error, error_size, "ImageFS " KOS_SEALED_KEY_DIR "/ is %s: refused",
                         r == -ELOOP ? "a symlink or not a directory" : strerror(-r));
                return r;
        }
        int r = kos_read_file_at(dirfd, key_id, KOS_SEALED_KEY_MAX, &data, &len);
        if (r == -ENOENT)
                return -ENOKEY;
        if (r < 0) {
                snprintf(error, error_size, "ImageFS " KOS_SEALED_KEY_DIR "/%s: %s", key_id,
                         r == -ELOOP ? "a symlink: refused" : strerror(-r));
                return r;
        }
        if (kos_sealed_key_parse((const uint8_t *)data, len, ret) < 0) {
                snprintf(error, error_size, "ImageFS " KOS_SEALED_KEY_DIR "/%s is not a sealed-key file", key_id);
                return -EBADMSG;
        }
        return 0;
}

static int tpm_lookup(const char *key_id, uint8_t **ret, size_t *ret_len, char *error, size_t error_size) {
        struct kos_sealed_key k;
        struct kos_tpm t;
        uint8_t data[KOS_TPM_SEAL_DATA_MAX];
        size_t len;

        if (!kos_name_is_valid(key_id))
                return -EINVAL;
        int r = read_sealed(key_id, &k, error, error_size);
        if (r < 0)
                return r;
        if ((r = kos_tpm_open(&t)) < 0) {
                snprintf(error, error_size, "the key is sealed in a TPM, and %s",
                         r == -ENODEV ? "this machine has none" : strerror(-r));
                return r;
        }
        r = kos_tpm_unseal(&t, &k, data, &len, error, error_size);
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

const struct kos_key_provider kos_key_provider_tpm = {
        .name = "TPM (sealed to the verified chain, ImageFS " KOS_SEALED_KEY_DIR "/)",
        .short_name = "TPM",
        .lookup = tpm_lookup,
};

static int initrd_lookup(const char *key_id, uint8_t **ret, size_t *ret_len, char *error, size_t error_size) {
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
        if (r < 0) {
                snprintf(error, error_size, KOS_INITRD_KEY_DIR "/%s: %s", key_id, strerror(-r));
                return r;
        }
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
                   const struct kos_key_provider **ret_provider, char *error, size_t error_size) {
        int r = -ENOKEY;

        snprintf(error, error_size, "no such key");
        for (; *providers; providers++) {
                *ret_provider = *providers;
                error[0] = '\0';
                r = (*providers)->lookup(key_id, ret, ret_len, error, error_size);
                if (r == -ENOKEY)
                        snprintf(error, error_size, "no such key");
                else {
                        if (r < 0 && !error[0])
                                snprintf(error, error_size, "%s", strerror(-r));
                        return r;
                }
        }
        return r;
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
