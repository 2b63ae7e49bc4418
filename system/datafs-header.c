/* SPDX-License-Identifier: MIT */
/* The checks of a LUKS2 DataFS header before it is opened (datafs-header.h). */
#include "datafs-header.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sha256.h"
#include "util.h"

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

static const uint8_t luks2_magic[2][6] = {{'L', 'U', 'K', 'S', 0xba, 0xbe}, {'S', 'K', 'U', 'L', 0xba, 0xbe}};

/* The bytes are the disk's: anyone who can write the disk wrote them. */
int datafs_header_copy_verify(uint8_t *area, uint64_t size, int copy, uint64_t *ret_seqid) {
        uint8_t csum[64], digest[KOS_SHA256_LEN];
        uint64_t hdr_size, hdr_offset, seqid;
        int r;

        memcpy(&hdr_size, area + LUKS2_HDR_SIZE_AT, sizeof hdr_size);
        memcpy(&hdr_offset, area + LUKS2_HDR_OFFSET_AT, sizeof hdr_offset);
        memcpy(&seqid, area + LUKS2_SEQID_AT, sizeof seqid);
        if (memcmp(area, luks2_magic[copy], sizeof luks2_magic[copy]) != 0 || area[6] != 0 || area[7] != 2 ||
            be64toh(hdr_size) != size || be64toh(hdr_offset) != (uint64_t)copy * size ||
            strncmp((const char *)area + LUKS2_CSUM_ALG_AT, "sha256", 32) != 0)
                return -EBADMSG;
        memcpy(csum, area + LUKS2_CSUM_AT, sizeof csum);
        memset(area + LUKS2_CSUM_AT, 0, sizeof csum);
        r = kos_sha256(area, size, digest);
        memcpy(area + LUKS2_CSUM_AT, csum, sizeof csum);
        if (r < 0)
                return r;
        if (!kos_digest_equal(digest, csum))
                return -EBADMSG;
        *ret_seqid = be64toh(seqid);
        return 0;
}

/* The size the binary header of a copy (0 primary, 1 secondary) at area
 * claims, whatever its checksum, or 0 without that copy's magic. */
static uint64_t copy_claims(const uint8_t *area, int copy) {
        uint64_t size;

        if (memcmp(area, luks2_magic[copy], sizeof luks2_magic[copy]) != 0)
                return 0;
        memcpy(&size, area + LUKS2_HDR_SIZE_AT, sizeof size);
        return be64toh(size);
}

int datafs_header_copies_are_kos(const char *device, struct kos_error *ret_error) {
        _cleanup_free_ uint8_t *area = malloc(2 * DATAFS_HEADER_COPY);
        uint64_t seqid, claims;
        ssize_t n;
        int fd;

        if (!area)
                return kos_error_set(ret_error, -ENOMEM, "out of memory");
        if ((fd = open(device, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
                return kos_error_set(ret_error, -errno, "cannot read it: %s", strerror(errno));
        n = pread(fd, area, 2 * DATAFS_HEADER_COPY, 0);
        int e = errno;
        close(fd);
        if (n != (ssize_t)(2 * DATAFS_HEADER_COPY))
                return kos_error_set(ret_error, n < 0 ? -e : -EIO, "cannot read its first %u KiB: %s",
                                     2 * DATAFS_HEADER_COPY >> 10, n < 0 ? strerror(e) : "too short");
        /* A copy that claims another size is refused whatever its checksum:
         * libcryptsetup reads the secondary at the size of a primary whose
         * checksum holds, even when its JSON does not parse (then it is only
         * "obsolete", and the secondary's offsets are not scanned). KOS never
         * writes one, and a torn write keeps the magic and the size, which
         * share the first sector. */
        for (int copy = 0; copy < 2; copy++) {
                claims = copy_claims(area + copy * DATAFS_HEADER_COPY, copy);
                if (claims != 0 && claims != DATAFS_HEADER_COPY)
                        return kos_error_set(ret_error, -EPERM, "its %s header copy claims %llu bytes, not the %u KiB "
                                             "of KOS's", copy == 0 ? "primary" : "secondary",
                                             (unsigned long long)claims, DATAFS_HEADER_COPY >> 10);
        }
        if (datafs_header_copy_verify(area, DATAFS_HEADER_COPY, 0, &seqid) == 0 ||
            datafs_header_copy_verify(area + DATAFS_HEADER_COPY, DATAFS_HEADER_COPY, 1, &seqid) == 0)
                return 0;
        return kos_error_set(ret_error, -EPERM,
                             "neither header copy is a whole %u KiB LUKS2 copy, the size KOS writes (magic, "
                             "version, size, offset or SHA-256 checksum)",
                             DATAFS_HEADER_COPY >> 10);
}
