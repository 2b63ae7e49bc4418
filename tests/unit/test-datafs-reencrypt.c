/* SPDX-License-Identifier: MIT */
/* LUKS2 encryption in place with a data shift (system/datafs-reencrypt.c),
 * on an image file: libcryptsetup encrypts offline, without device-mapper,
 * so it runs here. A child process dies in the middle of the encryption (a
 * power cut as far as the image is concerned: nothing after its last write
 * lands); the parent resumes it, and then decrypts the data segment itself
 * (aes-xts-plain64 with the test's volume key, in sectors of 512 or 4096
 * bytes, the IV the number of the sector's first 512 bytes in the segment,
 * as dm-crypt counts for LUKS2) and compares it with what was there. */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datafs-reencrypt.h"
#include "test.h"

#define MIB (1ull << 20)
#define IMAGE (96 * MIB)
#define SHIFT (32 * MIB)
#define DATA (IMAGE - SHIFT) /* what the "file system" holds; the tail is free */
#define PASS "test passphrase"

static const uint8_t volume_key[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};

static uint32_t sector_size;

static int format(struct crypt_device *cd, void *userdata, struct kos_error *ret_error) {
        struct crypt_pbkdf_type pbkdf = {.type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
                                         .flags = CRYPT_PBKDF_NO_BENCHMARK};
        struct crypt_params_luks2 params = {.pbkdf = &pbkdf, .sector_size = sector_size};
        int r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, (const char *)volume_key, sizeof volume_key,
                             &params);

        if (r < 0)
                return kos_error_set(ret_error, r, "format: %d", r);
        return crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, (const char *)volume_key, sizeof volume_key, PASS,
                                               strlen(PASS));
}

static unsigned calls;
static uint64_t last_done;

static void die_in_the_middle(uint64_t done, uint64_t total, void *userdata) {
        (void)total;
        (void)userdata;
        if (++calls == 3) /* after a hotzone of the five, as the console shows it */
                _exit(42);
}

/* After the last hotzone, before libcryptsetup's last header update. */
static void die_after_the_last_hotzone(uint64_t done, uint64_t total, void *userdata) {
        (void)userdata;
        if (done == total)
                _exit(42);
}

static void count(uint64_t done, uint64_t total, void *userdata) {
        (void)total;
        (void)userdata;
        calls++;
        last_done = done;
}

static int load(const char *path, struct crypt_device **ret) {
        int r = crypt_init(ret, path);
        return r < 0 ? r : crypt_load(*ret, CRYPT_LUKS2, NULL);
}

/* The segment at offset, decrypted sector by sector, equals plain. */
static int decrypts_to(const char *path, uint64_t offset, const uint8_t *plain, size_t len) {
        static uint8_t in[4096], out[4096];
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        int fd = open(path, O_RDONLY | O_CLOEXEC), ok = c && fd >= 0, n;

        for (uint64_t s = 0; ok && s < len / sector_size; s++) {
                uint8_t iv[16] = {0};
                for (int i = 0; i < 8; i++)
                        iv[i] = (uint8_t)((s * (sector_size / 512)) >> (8 * i));
                ok = pread(fd, in, sector_size, (off_t)(offset + s * sector_size)) == (ssize_t)sector_size &&
                     EVP_DecryptInit_ex(c, EVP_aes_256_xts(), NULL, volume_key, iv) == 1 &&
                     EVP_DecryptUpdate(c, out, &n, in, (int)sector_size) == 1 && n == (int)sector_size &&
                     memcmp(out, plain + s * sector_size, sector_size) == 0;
        }
        EVP_CIPHER_CTX_free(c);
        if (fd >= 0)
                close(fd);
        return ok;
}

/* The file holds plain's first len bytes at offset. */
static bool holds(const char *path, uint64_t offset, const uint8_t *plain, size_t len) {
        uint8_t *buf = malloc(len);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        bool same = buf && fd >= 0 && pread(fd, buf, len, (off_t)offset) == (ssize_t)len &&
                    memcmp(buf, plain, len) == 0;

        free(buf);
        if (fd >= 0)
                close(fd);
        return same;
}

#define HEADER_COPY 16384 /* libcryptsetup's default LUKS2 metadata area, of each of the two copies */

/* die: where the child dies. old_copy (0 or 1; -1: none): after the run,
 * that copy of the header goes back to what it was before it (a cut while
 * the two copies of the finished header were written). */
static void cut_and_resume(int *failed_, kos_datafs_reencrypt_progress_fn die, int old_copy) {
        static uint8_t before[2 * HEADER_COPY];
        char path[512], header[512];
        struct kos_error why = KOS_ERROR_NULL;
        uint8_t *plain = malloc(DATA);
        struct crypt_device *cd = NULL;
        bool head_written = false;
        int fd, status;

        CHECK(plain);
        for (size_t i = 0; i < DATA; i++)
                plain[i] = (uint8_t)(i * 2654435761u >> 13);
        snprintf(path, sizeof path, "%s/data.img", test_tmpdir());
        snprintf(header, sizeof header, "%s/header", test_tmpdir());
        CHECK((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0);
        CHECK(write(fd, plain, DATA) == (ssize_t)DATA && ftruncate(fd, IMAGE) == 0 && close(fd) == 0);

        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                int r = kos_datafs_reencrypt_begin(path, header, SHIFT, format, NULL, NULL, PASS, &head_written, &why);
                if (r >= 0 && load(path, &cd) >= 0)
                        r = kos_datafs_reencrypt_run(cd, 0, PASS, header, die, NULL, &why);
                fprintf(stderr, "  the child was not cut: %d %s\n", r, why.msg);
                _exit(1);
        }
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 42);
        CHECK(access(header, F_OK) < 0); /* the header file is gone after the begin */

        CHECK((fd = open(path, O_RDWR | O_CLOEXEC)) >= 0);
        CHECK(pread(fd, before, sizeof before, 0) == (ssize_t)sizeof before && close(fd) == 0);
        CHECK(load(path, &cd) >= 0);
        CHECK(crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE);
        int r = kos_datafs_reencrypt_run(cd, 0, PASS, header, count, NULL, &why);
        if (old_copy >= 0) {
                CHECK((fd = open(path, O_RDWR | O_CLOEXEC)) >= 0);
                CHECK(pwrite(fd, before + old_copy * HEADER_COPY, HEADER_COPY, old_copy * HEADER_COPY) ==
                              HEADER_COPY &&
                      close(fd) == 0);
        }
        if (r < 0)
                fprintf(stderr, "  %s\n", why.msg);
        CHECK(r == (die == die_after_the_last_hotzone ? 1 : 0));
        /* cut in the middle: libcryptsetup's resume; after the last
         * hotzone: nothing was left to encrypt */
        CHECK(die == die_after_the_last_hotzone ? calls == 0 : calls >= 2 && last_done == IMAGE - SHIFT / 2);
        CHECK(crypt_reencrypt_status(cd, NULL) == CRYPT_REENCRYPT_NONE);
        CHECK(access(header, F_OK) < 0);
        CHECK(crypt_activate_by_passphrase(cd, NULL, 0, PASS, strlen(PASS), 0) == 0); /* as the boot goes on */
        uint64_t offset = crypt_get_data_offset(cd) * 512;
        crypt_free(cd);
        CHECK(offset == SHIFT / 2);
        CHECK(decrypts_to(path, offset, plain, DATA));
        /* A fresh load: no requirement left, the key slot opens. */
        CHECK(load(path, &cd) >= 0);
        uint32_t flags = ~0u;
        CHECK(crypt_persistent_flags_get(cd, CRYPT_FLAGS_REQUIREMENTS, &flags) == 0 && flags == 0);
        CHECK(crypt_activate_by_passphrase(cd, NULL, 0, PASS, strlen(PASS), 0) == 0);
        crypt_free(cd);
        /* The plain-text copy of the first segment is not in the free tail. */
        CHECK(!holds(path, IMAGE - SHIFT / 2, plain, SHIFT / 2));
        free(plain);
}

/* One run of cut_and_resume() in sectors of size. */
static void cut_in_sectors_of(int *failed_, uint32_t size, kos_datafs_reencrypt_progress_fn die, int old_copy) {
        sector_size = size;
        calls = 0;
        cut_and_resume(failed_, die, old_copy);
}

TEST(datafs_encryption_in_place_cut_in_the_middle_resumes_and_keeps_every_byte) {
        cut_in_sectors_of(failed_, 512, die_in_the_middle, -1);
}

TEST(datafs_encryption_in_place_in_4k_sectors_cut_in_the_middle_resumes_and_keeps_every_byte) {
        cut_in_sectors_of(failed_, 4096, die_in_the_middle, -1);
}

/* libcryptsetup 2.6.1 does not resume this one itself (-EIO, "Failed to
 * set device segments for next reencryption hotzone"). */
TEST(datafs_encryption_in_place_cut_after_its_last_hotzone_is_finished_and_keeps_every_byte) {
        cut_in_sectors_of(failed_, 4096, die_after_the_last_hotzone, -1);
}

/* Each copy carries its checksum and a higher sequence number: with one
 * of them still the old one, libcryptsetup loads the other. */
TEST(datafs_encryption_in_place_cut_while_its_last_header_update_is_written_loads_either_copy) {
        for (int copy = 0; copy < 2; copy++) {
                cut_in_sectors_of(failed_, 4096, die_after_the_last_hotzone, copy);
                if (*failed_)
                        return;
        }
}

TEST(datafs_encryption_in_place_refuses_a_shift_that_is_not_whole_4k_pairs) {
        char path[512], header[512];
        struct kos_error why = KOS_ERROR_NULL;

        sector_size = 512;
        bool head_written = true;

        snprintf(path, sizeof path, "%s/data.img", test_tmpdir());
        snprintf(header, sizeof header, "%s/header", test_tmpdir());
        CHECK(kos_datafs_reencrypt_begin(path, header, 4096, format, NULL, NULL, PASS, &head_written, &why) ==
              -EINVAL);
        CHECK(!head_written);
        CHECK(strstr(why.msg, "not a multiple of 8 KiB"));
}
