/* SPDX-License-Identifier: MIT */
/* The checks of a LUKS2 DataFS header before the System Kernel's init tries
 * its key (system/datafs-header.c), on headers libcryptsetup writes to an
 * image file: the one KOS formats passes; a header rebuilt by whoever can
 * write the disk, with another data cipher, key slot cipher or KDF, is
 * refused with what differs. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datafs-header.h"
#include "test.h"

#define PASS "test passphrase"

static const char volume_key[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

struct header {
        const char *cipher, *mode;
        size_t key_size;
        const char *keyslot_cipher; /* NULL: libcryptsetup's choice for the data cipher */
        size_t keyslot_key_size;
        const char *kdf;
        uint32_t iterations;
};

static const struct header kos = {"aes", "xts-plain64", 64, NULL, 0, CRYPT_KDF_PBKDF2, DATAFS_PBKDF2_ITERATIONS};

/* A 20 MiB image file with header h and one key slot for PASS; the device
 * loaded in *ret_cd, the key slot in *ret_slot. 0, or a negative errno. */
static int make(const struct header *h, struct crypt_device **ret_cd, int *ret_slot) {
        char path[512];
        struct crypt_pbkdf_type pbkdf = {.type = h->kdf, .hash = "sha256", .iterations = h->iterations,
                                         .flags = CRYPT_PBKDF_NO_BENCHMARK};
        struct crypt_params_luks2 params = {.sector_size = 4096};
        int fd, r;

        if (strcmp(h->kdf, CRYPT_KDF_PBKDF2) != 0) {
                pbkdf.hash = NULL;
                pbkdf.iterations = 4;
                pbkdf.max_memory_kb = 32;
                pbkdf.parallel_threads = 1;
        }
        params.pbkdf = &pbkdf;
        snprintf(path, sizeof path, "%s/data.img", test_tmpdir());
        if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
                return -errno;
        r = ftruncate(fd, 20 << 20) < 0 ? -errno : 0;
        close(fd);
        if (r < 0 || (r = crypt_init(ret_cd, path)) < 0)
                return r;
        if ((r = crypt_format(*ret_cd, CRYPT_LUKS2, h->cipher, h->mode, NULL, volume_key, h->key_size, &params)) < 0)
                return r;
        if (h->keyslot_cipher && (r = crypt_keyslot_set_encryption(*ret_cd, h->keyslot_cipher, h->keyslot_key_size)) < 0)
                return r;
        if ((*ret_slot = crypt_keyslot_add_by_volume_key(*ret_cd, CRYPT_ANY_SLOT, volume_key, h->key_size, PASS,
                                                         strlen(PASS))) < 0)
                return *ret_slot;
        /* As the init sees it: loaded from the disk. */
        crypt_free(*ret_cd);
        *ret_cd = NULL;
        if ((r = crypt_init(ret_cd, path)) < 0)
                return r;
        return crypt_load(*ret_cd, CRYPT_LUKS2, NULL);
}

TEST(datafs_header_as_kos_formats_it_passes_both_checks) {
        struct crypt_device *cd = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        int slot = -1;

        CHECK(make(&kos, &cd, &slot) == 0);
        CHECK(datafs_keyslot_is_kos(cd, slot, &why) == 0);
        CHECK(datafs_segment_is_kos(cd, &why) == 0);
        crypt_free(cd);
}

/* Both header copies of the image at path with their JSON changed by edit,
 * each with its SHA-256 checksum again: what a writer of the disk does by
 * hand (libcryptsetup itself formats a null cipher only with device-mapper,
 * which this host lacks). 0, or a negative errno. */
static int edit_header(const char *path, void (*edit)(json_t *root)) {
        uint8_t bin[4096], *area = NULL;
        uint64_t size;
        int fd = open(path, O_RDWR | O_CLOEXEC), r = -EBADMSG;

        if (fd < 0 || pread(fd, bin, sizeof bin, 0) != (ssize_t)sizeof bin)
                goto out;
        memcpy(&size, bin + 8, sizeof size);
        size = be64toh(size);
        if (size < 16384 || size > (4u << 20) || !(area = malloc(size)))
                goto out;
        for (int copy = 0; copy < 2; copy++) {
                json_t *root;
                char *json;
                unsigned len = 0;

                if (pread(fd, area, size, (off_t)(copy * size)) != (ssize_t)size ||
                    !(root = json_loads((const char *)area + 4096, 0, NULL)))
                        goto out;
                edit(root);
                json = json_dumps(root, JSON_COMPACT);
                json_decref(root);
                if (!json || strlen(json) >= size - 4096) {
                        free(json);
                        goto out;
                }
                memset(area + 4096, 0, size - 4096);
                memcpy(area + 4096, json, strlen(json));
                free(json);
                memset(area + 0x1c0, 0, 64);
                if (!EVP_Digest(area, size, area + 0x1c0, &len, EVP_sha256(), NULL) ||
                    pwrite(fd, area, size, (off_t)(copy * size)) != (ssize_t)size)
                        goto out;
        }
        r = 0;
out:
        free(area);
        if (fd >= 0)
                close(fd);
        return r;
}

static json_t *member(json_t *root, const char *object, const char *name) {
        return json_object_get(json_object_get(root, object), name);
}

static void null_cipher(json_t *root) {
        json_object_set_new(member(root, "segments", "0"), "encryption", json_string("cipher_null-ecb"));
}

static void integrity(json_t *root) {
        json_object_set_new(member(root, "segments", "0"), "integrity",
                            json_pack("{s:s, s:s, s:s}", "type", "hmac(sha256)", "journal_encryption", "none",
                                      "journal_integrity", "none"));
}

static void costly_digest(json_t *root) {
        json_object_set_new(member(root, "digests", "0"), "iterations", json_integer(5000000));
}

static void huge_second_slot_key(json_t *root) {
        json_object_set_new(member(root, "keyslots", "1"), "key_size", json_integer(25000));
}

/* The image of make() with edit made by hand, loaded again in *cd. */
static int make_and_edit(struct crypt_device **cd, int *slot, void (*edit)(json_t *root)) {
        char path[512];
        int r;

        if ((r = make(&kos, cd, slot)) < 0)
                return r;
        crypt_free(*cd);
        *cd = NULL;
        snprintf(path, sizeof path, "%s/data.img", test_tmpdir());
        if ((r = edit_header(path, edit)) < 0 || (r = crypt_init(cd, path)) < 0)
                return r;
        return crypt_load(*cd, CRYPT_LUKS2, NULL);
}

/* The device's own key slot in a header whose data is not encrypted: the
 * writer's plain file system would be mounted as /data. */
TEST(datafs_header_with_a_null_data_cipher_is_not_opened) {
        struct header h = kos;
        struct crypt_device *cd = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        int slot = -1;

        CHECK(make_and_edit(&cd, &slot, null_cipher) == 0);
        CHECK(datafs_keyslot_is_kos(cd, slot, &why) == 0); /* the device's own key slot */
        CHECK(datafs_segment_is_kos(cd, &why) == -EPERM);
        fprintf(stderr, "  %s\n", why.msg);
        CHECK(strstr(why.msg, "its data is encrypted with cipher_null-ecb"));
        crypt_free(cd);
        /* Another cipher, and a shorter key, are refused alike. */
        h.cipher = "aes";
        h.mode = "cbc-essiv:sha256";
        h.key_size = 32;
        CHECK(make(&h, &cd, &slot) == 0);
        CHECK(datafs_segment_is_kos(cd, &why) == -EPERM);
        CHECK(strstr(why.msg, "aes-cbc-essiv:sha256, 256-bit key"));
        crypt_free(cd);
        /* KOS's cipher with a 256-bit key. */
        h.mode = "xts-plain64";
        CHECK(make(&h, &cd, &slot) == 0);
        CHECK(datafs_segment_is_kos(cd, &why) == -EPERM);
        CHECK(strstr(why.msg, "aes-xts-plain64, 256-bit key"));
        crypt_free(cd);
}

/* The image of make() with edit made by hand: which (the key slot's check,
 * or the segment's) refuses it with reason. */
static void refused_after(int *failed_, void (*edit)(json_t *root),
                          int (*which)(struct crypt_device *cd, int slot, struct kos_error *why), const char *reason) {
        struct crypt_device *cd = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        int slot = -1;

        CHECK(make_and_edit(&cd, &slot, edit) == 0);
        CHECK(which(cd, slot, &why) == -EPERM);
        fprintf(stderr, "  %s\n", why.msg);
        CHECK(strstr(why.msg, reason));
        crypt_free(cd);
}

static int segment_check(struct crypt_device *cd, int slot, struct kos_error *why) {
        (void)slot;
        return datafs_segment_is_kos(cd, why);
}

TEST(datafs_header_whose_data_segment_has_integrity_is_not_opened) {
        refused_after(failed_, integrity, segment_check, "integrity hmac(sha256)");
}

/* libcryptsetup computes the digest of the key a slot gives at the cost the
 * header sets, after the KDF: 2^31 iterations hold the init for minutes. */
TEST(datafs_header_whose_digest_costs_more_than_kos_makes_is_not_tried) {
        refused_after(failed_, costly_digest, datafs_keyslot_is_kos, "digest 0 is pbkdf2-sha256 of 5000000 iterations");
}

/* A key slot's key size sets what libcryptsetup allocates (about 4000 times
 * it) before its KDF runs; the volume key size the header reports comes
 * from another slot. */
TEST(datafs_keyslot_holding_a_key_of_another_size_is_not_tried) {
        struct crypt_device *cd = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        char path[512];
        int slot = -1;

        CHECK(make(&kos, &cd, &slot) == 0);
        CHECK(crypt_keyslot_add_by_volume_key(cd, 1, volume_key, sizeof volume_key, PASS, strlen(PASS)) == 1);
        crypt_free(cd);
        cd = NULL;
        snprintf(path, sizeof path, "%s/data.img", test_tmpdir());
        CHECK(edit_header(path, huge_second_slot_key) == 0);
        CHECK(crypt_init(&cd, path) == 0 && crypt_load(cd, CRYPT_LUKS2, NULL) == 0);
        CHECK(crypt_get_volume_key_size(cd) == 64);
        CHECK(datafs_keyslot_is_kos(cd, 0, &why) == 0);
        CHECK(datafs_keyslot_is_kos(cd, 1, &why) == -EPERM);
        fprintf(stderr, "  %s\n", why.msg);
        CHECK(strstr(why.msg, "key slot 1 holds a 200000-bit key"));
        crypt_free(cd);
}

/* A header made as h says: the key slot's check refuses it with reason. */
static void keyslot_refused(int *failed_, const struct header *h, const char *reason) {
        struct crypt_device *cd = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        int slot = -1;

        CHECK(make(h, &cd, &slot) == 0);
        CHECK(datafs_keyslot_is_kos(cd, slot, &why) == -EPERM);
        fprintf(stderr, "  %s\n", why.msg);
        CHECK(strstr(why.msg, reason));
        crypt_free(cd);
}

TEST(datafs_keyslot_whose_area_is_not_aes_xts_512_is_not_tried) {
        struct header h = kos;

        h.keyslot_cipher = "aes-cbc-essiv:sha256";
        h.keyslot_key_size = 32;
        keyslot_refused(failed_, &h, "area is encrypted with aes-cbc-essiv:sha256, 256-bit key");
}

/* argon2id, or PBKDF2 of another cost: a KDF the writer sized would hold
 * the init for as long as it likes. */
TEST(datafs_keyslot_with_another_kdf_or_cost_is_not_tried) {
        struct header h = kos;

        h.kdf = CRYPT_KDF_ARGON2ID;
        keyslot_refused(failed_, &h, "KDF is argon2id");
        if (*failed_)
                return;
        h.kdf = CRYPT_KDF_PBKDF2;
        h.iterations = DATAFS_PBKDF2_ITERATIONS * 1000;
        keyslot_refused(failed_, &h, "pbkdf2-sha256 of 1000000 iterations");
}

TEST(datafs_keyslot_the_token_names_that_is_not_active_is_not_tried) {
        struct crypt_device *cd = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        int slot = -1;

        CHECK(make(&kos, &cd, &slot) == 0);
        CHECK(datafs_keyslot_is_kos(cd, slot + 1, &why) == -EPERM);
        CHECK(strstr(why.msg, "is not an active key slot"));
        CHECK(datafs_keyslot_is_kos(cd, 32, &why) == -EPERM);
        crypt_free(cd);
}

/* The image of make() with len bytes at offset overwritten by bytes. */
static int overwrite(const void *bytes, size_t len, off_t offset) {
        char path[512];
        int fd, r = 0;

        snprintf(path, sizeof path, "%s/data.img", test_tmpdir());
        if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
                return -errno;
        if (pwrite(fd, bytes, len, offset) != (ssize_t)len)
                r = -EIO;
        close(fd);
        return r;
}

/* KOS's image of make() at path, not loaded: 0, or a negative errno. */
static int kos_image(char path[static 512]) {
        struct crypt_device *cd = NULL;
        int slot = -1, r;

        snprintf(path, 512, "%s/data.img", test_tmpdir());
        r = make(&kos, &cd, &slot);
        crypt_free(cd);
        return r;
}

/* A power cut that tears one copy leaves the other, which libcryptsetup
 * loads (and repairs the torn one from): both are KOS's size. */
TEST(datafs_header_copies_as_kos_formats_them_pass_before_libcryptsetup_reads_them_and_one_torn_copy_is_enough) {
        static const uint8_t zeros[4096];
        struct crypt_device *cd = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        char path[512];

        CHECK(kos_image(path) == 0);
        CHECK(datafs_header_copies_are_kos(path, &why) == 0);
        CHECK(overwrite(zeros, sizeof zeros, 0) == 0); /* the primary torn */
        CHECK(datafs_header_copies_are_kos(path, &why) == 0);
        cd = NULL;
        CHECK(crypt_init(&cd, path) == 0 && crypt_load(cd, CRYPT_LUKS2, NULL) == 0);
        crypt_free(cd);
        CHECK(kos_image(path) == 0);
        CHECK(overwrite(zeros, sizeof zeros, DATAFS_HEADER_COPY + 4096) == 0); /* the secondary's JSON torn */
        CHECK(datafs_header_copies_are_kos(path, &why) == 0);
        CHECK(overwrite(zeros, sizeof zeros, 0) == 0); /* and the primary */
        CHECK(datafs_header_copies_are_kos(path, &why) == -EPERM);
        fprintf(stderr, "  %s\n", why.msg);
        CHECK(strstr(why.msg, "neither header copy is a whole 16 KiB LUKS2 copy"));
}

/* libcryptsetup takes a copy's size from the disk, up to 4 MiB, and parses
 * its JSON before KOS's checks: copies of any other size are refused before
 * it reads them. */
TEST(datafs_header_with_copies_of_another_size_is_refused_before_libcryptsetup_reads_it) {
        struct crypt_pbkdf_type pbkdf = {.type = CRYPT_KDF_PBKDF2, .hash = "sha256",
                                         .iterations = DATAFS_PBKDF2_ITERATIONS, .flags = CRYPT_PBKDF_NO_BENCHMARK};
        struct crypt_params_luks2 params = {.sector_size = 4096, .pbkdf = &pbkdf};
        struct crypt_device *cd = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        char path[512];

        CHECK(kos_image(path) == 0);
        /* The whole header formatted anew with 64 KiB copies. */
        CHECK(crypt_init(&cd, path) == 0);
        CHECK(crypt_set_metadata_size(cd, 64 << 10, 0) == 0);
        CHECK(crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, volume_key, 64, &params) == 0);
        crypt_free(cd);
        CHECK(datafs_header_copies_are_kos(path, &why) == -EPERM);
        fprintf(stderr, "  %s\n", why.msg);
        CHECK(strstr(why.msg, "its primary header copy claims 65536 bytes"));
        /* KOS's primary, and a secondary that claims 4 MiB (which
         * libcryptsetup would reject, and repair from the primary). */
        uint64_t size = htobe64(4u << 20);
        CHECK(kos_image(path) == 0);
        CHECK(overwrite(&size, sizeof size, DATAFS_HEADER_COPY + 8) == 0);
        CHECK(datafs_header_copies_are_kos(path, &why) == -EPERM);
        fprintf(stderr, "  %s\n", why.msg);
        CHECK(strstr(why.msg, "its secondary header copy claims 4194304 bytes"));
        /* KOS's secondary, and a primary that claims 4 MiB: with its checksum
         * right over 4 MiB and JSON that does not parse, libcryptsetup reads
         * a secondary at 4 MiB, with 4 MiB of JSON, and never the one at
         * 16 KiB (the review's attack). Its checksum is not needed here. */
        CHECK(kos_image(path) == 0);
        CHECK(overwrite(&size, sizeof size, 8) == 0);
        CHECK(datafs_header_copies_are_kos(path, &why) == -EPERM);
        fprintf(stderr, "  %s\n", why.msg);
        CHECK(strstr(why.msg, "its primary header copy claims 4194304 bytes"));
}
