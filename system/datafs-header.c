/* SPDX-License-Identifier: MIT */
/* The checks of a LUKS2 DataFS header before it is opened (datafs-header.h). */
#include "datafs-header.h"

#include <errno.h>
#include <string.h>

#define DATAFS_CIPHER "aes"
#define DATAFS_CIPHER_MODE "xts-plain64"
#define DATAFS_KEY_BYTES 64

static const char *or_none(const char *s) {
        return s ? s : "none";
}

int datafs_keyslot_is_kos(struct crypt_device *cd, int keyslot, struct kos_error *ret_error) {
        struct crypt_pbkdf_type pbkdf = {0};
        const char *encryption;
        size_t key_size = 0;
        crypt_keyslot_info status = crypt_keyslot_status(cd, keyslot);

        if (status != CRYPT_SLOT_ACTIVE && status != CRYPT_SLOT_ACTIVE_LAST)
                return kos_error_set(ret_error, -EPERM, "key slot %d is not an active key slot", keyslot);
        encryption = crypt_keyslot_get_encryption(cd, keyslot, &key_size);
        if (!encryption || strcmp(encryption, DATAFS_CIPHER "-" DATAFS_CIPHER_MODE) != 0 ||
            key_size != DATAFS_KEY_BYTES)
                return kos_error_set(ret_error, -EPERM,
                                     "key slot %d's area is encrypted with %s, %zu-bit key, not KOS's " DATAFS_CIPHER
                                     "-" DATAFS_CIPHER_MODE ", 512-bit key",
                                     keyslot, or_none(encryption), key_size * 8);
        if (crypt_keyslot_get_pbkdf(cd, keyslot, &pbkdf) < 0 || !pbkdf.type ||
            strcmp(pbkdf.type, CRYPT_KDF_PBKDF2) != 0 || !pbkdf.hash || strcmp(pbkdf.hash, "sha256") != 0 ||
            pbkdf.iterations != DATAFS_PBKDF2_ITERATIONS)
                return kos_error_set(ret_error, -EPERM,
                                     "key slot %d's KDF is %s-%s of %u iterations, not KOS's pbkdf2-sha256 of %u",
                                     keyslot, or_none(pbkdf.type), or_none(pbkdf.hash), pbkdf.iterations,
                                     DATAFS_PBKDF2_ITERATIONS);
        return 0;
}

int datafs_segment_is_kos(struct crypt_device *cd, struct kos_error *ret_error) {
        struct crypt_params_integrity integrity = {0};
        const char *cipher = crypt_get_cipher(cd), *mode = crypt_get_cipher_mode(cd);
        int key_size = crypt_get_volume_key_size(cd);

        if (!cipher || !mode || strcmp(cipher, DATAFS_CIPHER) != 0 || strcmp(mode, DATAFS_CIPHER_MODE) != 0 ||
            key_size != DATAFS_KEY_BYTES)
                return kos_error_set(ret_error, -EPERM,
                                     "its data is encrypted with %s-%s, %d-bit key, not KOS's " DATAFS_CIPHER
                                     "-" DATAFS_CIPHER_MODE ", 512-bit key",
                                     or_none(cipher), or_none(mode), key_size * 8);
        if (crypt_get_integrity_info(cd, &integrity) >= 0 && integrity.integrity && integrity.integrity[0])
                return kos_error_set(ret_error, -EPERM, "its data segment has integrity %s, which KOS never sets",
                                     integrity.integrity);
        return 0;
}
