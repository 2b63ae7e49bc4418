/* SPDX-License-Identifier: MIT */
/* The recovery drive (system/datafs-recover-drive.c): the file's rules, and
 * the recovery key slot on a LUKS2 image file (libcryptsetup opens key
 * slots offline, without device-mapper, so it runs here): only the
 * passphrase of the slot the kos-recovery token names gives the volume
 * key, and a wrong one leaves every byte of the image as it was. The drive
 * itself (found by label, mounted) is tested in the VM
 * (tests/vm/test-datafs.sh). */
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datafs-recover-drive.h"
#include "test.h"

#define IMAGE_SIZE (20 << 20)
#define TPM_PASS "the TPM slot's passphrase"
#define GOOD "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static const uint8_t volume_key[64] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

static int parse(const char *s, size_t len, char pass[static KOS_DATAFS_RECOVERY_PASS_MAX]) {
        struct kos_error why = KOS_ERROR_NULL;
        return datafs_recovery_pass_parse(s, len, pass, &why);
}

TEST(datafs_recovery_file_is_64_hex_digits_and_at_most_one_newline) {
        char pass[KOS_DATAFS_RECOVERY_PASS_MAX];

        CHECK(parse(GOOD, 64, pass) == 0 && strcmp(pass, GOOD) == 0);
        CHECK(parse(GOOD "\n", 65, pass) == 0 && strcmp(pass, GOOD) == 0);
        CHECK(parse("00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF", 64, pass) == 0 &&
              strcmp(pass, GOOD) == 0);
        CHECK(parse(GOOD, 63, pass) == -EBADMSG);
        CHECK(parse(GOOD "0", 65, pass) == -EBADMSG);
        CHECK(parse(GOOD "\n\n", 66, pass) == -EBADMSG);
        CHECK(parse(GOOD "\r\n", 66, pass) == -EBADMSG);
        CHECK(parse(" " GOOD, 65, pass) == -EBADMSG);
        CHECK(parse("0011223344556677889 aabbccddeeff00112233445566778899aabbccddeeff", 64, pass) == -EBADMSG);
        CHECK(parse("0011223344556677889\0aabbccddeeff00112233445566778899aabbccddeeff", 64, pass) == -EBADMSG);
        CHECK(parse("g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 64, pass) == -EBADMSG);
        CHECK(parse("", 0, pass) == -EBADMSG);
}

static int write_file(const char *dir, const char *name, const char *data, size_t len) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, data, len);
        close(fd);
        return n == (ssize_t)len ? 0 : -EIO;
}

static int read_in(const char *dir, char pass[static KOS_DATAFS_RECOVERY_PASS_MAX]) {
        struct kos_error why = KOS_ERROR_NULL;
        int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return -errno;
        int r = datafs_recovery_pass_read(dirfd, pass, &why);
        close(dirfd);
        return r;
}

TEST(datafs_recovery_file_is_a_regular_file_of_at_most_128_bytes_never_a_link) {
        char dir[512], pass[KOS_DATAFS_RECOVERY_PASS_MAX], big[200], target[600], link[600];

        snprintf(dir, sizeof dir, "%s/drive", test_tmpdir());
        CHECK(mkdir(dir, 0700) == 0);
        CHECK(read_in(dir, pass) == -ENOENT);
        CHECK(write_file(dir, DATAFS_RECOVERY_DRIVE_FILE, GOOD "\n", 65) == 0);
        CHECK(read_in(dir, pass) == 0 && strcmp(pass, GOOD) == 0);
        memset(big, '0', sizeof big);
        CHECK(write_file(dir, DATAFS_RECOVERY_DRIVE_FILE, big, 129) == 0);
        CHECK(read_in(dir, pass) == -EBADMSG);
        CHECK(write_file(dir, DATAFS_RECOVERY_DRIVE_FILE, GOOD "  ", 66) == 0);
        CHECK(read_in(dir, pass) == -EBADMSG);
        /* A link to a good file elsewhere: not followed. */
        snprintf(target, sizeof target, "%s/elsewhere", test_tmpdir());
        snprintf(link, sizeof link, "%s/" DATAFS_RECOVERY_DRIVE_FILE, dir);
        CHECK(write_file(test_tmpdir(), "elsewhere", GOOD, 64) == 0);
        CHECK(unlink(link) == 0 && symlink(target, link) == 0);
        CHECK(read_in(dir, pass) == -ELOOP);
        /* A directory (or any other type) of that name: refused. */
        CHECK(unlink(link) == 0 && mkdir(link, 0700) == 0);
        CHECK(read_in(dir, pass) < 0);
        CHECK(rmdir(link) == 0 && mkfifo(link, 0600) == 0);
        CHECK(read_in(dir, pass) == -EBADMSG);
}

/* An image as the first format leaves it: key slot 0 (the TPM's), key slot
 * 1 (the recovery passphrase, GOOD) and its kos-recovery token. */
static int make_image(const char *path, bool with_recovery_token) {
        struct crypt_pbkdf_type pbkdf = {.type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
                                         .flags = CRYPT_PBKDF_NO_BENCHMARK};
        struct crypt_params_luks2 params = {.pbkdf = &pbkdf, .sector_size = 4096};
        struct crypt_device *cd = NULL;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), r;

        if (fd < 0 || ftruncate(fd, IMAGE_SIZE) < 0)
                return -EIO;
        close(fd);
        if ((r = crypt_init(&cd, path)) < 0)
                return r;
        if ((r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, (const char *)volume_key,
                              sizeof volume_key, &params)) >= 0 &&
            (r = crypt_keyslot_add_by_volume_key(cd, 0, (const char *)volume_key, sizeof volume_key, TPM_PASS,
                                                 strlen(TPM_PASS))) >= 0 &&
            (r = crypt_keyslot_add_by_volume_key(cd, 1, (const char *)volume_key, sizeof volume_key, GOOD,
                                                 strlen(GOOD))) >= 0 &&
            with_recovery_token)
                r = crypt_token_json_set(cd, CRYPT_ANY_TOKEN,
                                         "{\"type\":\"" KOS_DATAFS_RECOVERY_TOKEN "\",\"keyslots\":[\"1\"],"
                                         "\"kos-cms-cipher\":\"aes-256-cbc\",\"kos-cms\":\"\"}");
        crypt_free(cd);
        return r < 0 ? r : 0;
}

static char *slurp(const char *path) {
        char *buf = malloc(IMAGE_SIZE);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = buf && fd >= 0 ? pread(fd, buf, IMAGE_SIZE, 0) : -1;

        if (fd >= 0)
                close(fd);
        if (n != IMAGE_SIZE) {
                free(buf);
                return NULL;
        }
        return buf;
}

static int volume_key_by(const char *path, const char *pass, uint8_t key[static 64], int *slot) {
        struct crypt_device *cd = NULL;
        int r = crypt_init(&cd, path);

        if (r >= 0 && (r = crypt_load(cd, CRYPT_LUKS2, NULL)) >= 0)
                r = datafs_recovery_volume_key(cd, pass, key, 64, slot);
        crypt_free(cd);
        return r;
}

TEST(datafs_recovery_wrong_passphrase_opens_nothing_and_leaves_the_header_unchanged) {
        char path[512];
        uint8_t key[64];
        int slot = -1;

        snprintf(path, sizeof path, "%s/data.img", test_tmpdir());
        CHECK(make_image(path, true) == 0);
        char *before = slurp(path);
        CHECK(before);
        int r = volume_key_by(path, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", key, &slot);
        /* Key slot 0's passphrase is not the recovery slot's: refused too. */
        int r0 = volume_key_by(path, TPM_PASS, key, &slot);
        char *after = slurp(path);
        bool unchanged = after && memcmp(before, after, IMAGE_SIZE) == 0;
        free(before);
        free(after);
        CHECK(r == -EPERM && r0 == -EPERM && slot == 1);
        CHECK(unchanged);
}

TEST(datafs_recovery_passphrase_gives_the_volume_key_by_the_slot_its_token_names_only) {
        char path[512];
        uint8_t key[64];
        int slot = -1;

        snprintf(path, sizeof path, "%s/data.img", test_tmpdir());
        CHECK(make_image(path, true) == 0);
        CHECK(volume_key_by(path, GOOD, key, &slot) == 64 && slot == 1);
        CHECK(memcmp(key, volume_key, sizeof key) == 0);
        /* Without the token, no slot is the recovery slot. */
        CHECK(make_image(path, false) == 0);
        CHECK(volume_key_by(path, GOOD, key, &slot) == -ENOENT);
}
