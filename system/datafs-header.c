/* SPDX-License-Identifier: MIT */
/* The checks of a LUKS2 DataFS header before it is opened (datafs-header.h). */
#include "datafs-header.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#define DATAFS_CIPHER "aes"
#define DATAFS_CIPHER_MODE "xts-plain64"
#define DATAFS_KEY_BYTES 64

static const char *or_none(const char *s) {
        return s ? s : "none";
}

/* Every digest of the header PBKDF2-SHA256 of DATAFS_PBKDF2_ITERATIONS, as
 * libcryptsetup makes them for KOS's key slots (the encryption in place's
 * too): libcryptsetup computes the digest of every volume key a key slot
 * gives, at the cost the header sets. */
static int digests_are_kos(struct crypt_device *cd, struct kos_error *ret_error) {
        const char *dump, *name;
        json_auto_t *root = NULL;
        json_t *digest;

        if (crypt_dump_json(cd, &dump, 0) < 0 || !(root = json_loads(dump, 0, NULL)))
                return kos_error_set(ret_error, -EPERM, "its JSON cannot be read");
        json_object_foreach(json_object_get(root, "digests"), name, digest) {
                const char *type = json_string_value(json_object_get(digest, "type"));
                const char *hash = json_string_value(json_object_get(digest, "hash"));
                json_t *iterations = json_object_get(digest, "iterations");

                if (!type || strcmp(type, CRYPT_KDF_PBKDF2) != 0 || !hash || strcmp(hash, "sha256") != 0 ||
                    !json_is_integer(iterations) || json_integer_value(iterations) != DATAFS_PBKDF2_ITERATIONS)
                        return kos_error_set(ret_error, -EPERM,
                                             "digest %.16s is %.16s-%.16s of %lld iterations, not KOS's pbkdf2-sha256 "
                                             "of %u",
                                             name, type ? type : "none", hash ? hash : "none",
                                             json_is_integer(iterations) ? (long long)json_integer_value(iterations) : -1,
                                             DATAFS_PBKDF2_ITERATIONS);
        }
        return 0;
}

int datafs_keyslot_is_kos(struct crypt_device *cd, int keyslot, struct kos_error *ret_error) {
        struct crypt_pbkdf_type pbkdf = {0};
        const char *encryption;
        size_t key_size = 0;
        crypt_keyslot_info status = crypt_keyslot_status(cd, keyslot);
        int slot_key_size, r;

        if (status != CRYPT_SLOT_ACTIVE && status != CRYPT_SLOT_ACTIVE_LAST)
                return kos_error_set(ret_error, -EPERM, "key slot %d is not an active key slot", keyslot);
        /* libcryptsetup allocates about 4000 times this before the KDF runs. */
        if ((slot_key_size = crypt_keyslot_get_key_size(cd, keyslot)) != DATAFS_KEY_BYTES)
                return kos_error_set(ret_error, -EPERM, "key slot %d holds a %d-bit key, not KOS's 512-bit volume key",
                                     keyslot, slot_key_size < 0 ? -1 : slot_key_size * 8);
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
        if ((r = digests_are_kos(cd, ret_error)) < 0)
                return r;
        return 0;
}

int datafs_segment_is_kos(struct crypt_device *cd, struct kos_error *ret_error) {
        struct crypt_params_integrity integrity = {0};
        const char *cipher = crypt_get_cipher(cd), *mode = crypt_get_cipher_mode(cd);
        int key_size = crypt_get_volume_key_size(cd);

        if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE)
                return kos_error_set(ret_error, -EPERM, "an encryption in place is still in progress");
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
