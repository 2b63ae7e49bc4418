/* SPDX-License-Identifier: MIT */
/* The rollback floor's ImageFS store, on real files. Selection, bundle
 * installs and marking good against it are tested with signed manifests in
 * tests/host/test-rollback.sh. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "imagefs.h"
#include "rollback.h"
#include "select.h"
#include "test.h"

static int fresh_imagefs(struct kos_imagefs *img) {
        char path[512];
        snprintf(path, sizeof path, "%s/img", test_tmpdir());
        if (kos_imagefs_init(path) < 0)
                return -1;
        return kos_imagefs_open(path, img);
}

static int write_floor_file(const struct kos_imagefs *img, const char *text) {
        if (mkdirat(img->root_fd, "boot-state", 0755) < 0 && errno != EEXIST)
                return -errno;
        return kos_write_file_atomic_at(img->root_fd, "boot-state/rollback-floor", text, strlen(text), 0644);
}

static int store_read(const struct kos_imagefs *img, uint32_t *ret) {
        struct kos_error why = KOS_ERROR_NULL;
        return kos_rollback_store_read(img, ret, &why);
}

TEST(rollback_floor_missing_is_0) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_rollback_floor f;
        uint32_t v;
        CHECK(fresh_imagefs(&img) == 0);
        CHECK(store_read(&img, &v) == -ENOENT);
        CHECK(kos_rollback_floor_read(&img, NULL, &f) == 0);
        kos_imagefs_close(&img);
        CHECK(f.value == 0 && f.source == KOS_FLOOR_SOURCE_NONE && !f.warning[0]);
}

TEST(rollback_floor_raise_stores_a_decimal_number_and_never_goes_down) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_rollback_floor f;
        char *text = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        size_t len;
        uint32_t v = 0;
        CHECK(fresh_imagefs(&img) == 0);
        CHECK(kos_rollback_floor_raise(&img, 0, &why) == 0);
        CHECK(store_read(&img, &v) == -ENOENT); /* 0 needs no file */
        CHECK(kos_rollback_floor_raise(&img, 2, &why) == 0);
        CHECK(kos_read_file_at(img.root_fd, "boot-state/rollback-floor", 64, &text, &len) == 0);
        bool decimal = strcmp(text, "2\n") == 0;
        free(text);
        CHECK(decimal);
        CHECK(kos_rollback_floor_raise(&img, 1, &why) == -ERANGE);
        CHECK(kos_rollback_floor_raise(&img, 0, &why) == -ERANGE);
        CHECK(kos_rollback_floor_raise(&img, 2, &why) == 0);
        CHECK(store_read(&img, &v) == 0 && v == 2);
        CHECK(kos_rollback_floor_raise(&img, UINT32_MAX, &why) == 0);
        CHECK(kos_rollback_floor_read(&img, NULL, &f) == 0);
        kos_imagefs_close(&img);
        CHECK(f.value == UINT32_MAX && f.source == KOS_FLOOR_SOURCE_STORED);
}

TEST(rollback_floor_file_is_parsed_strictly) {
        static const char *const junk[] = {"", "\n", "x", "-1", "+1", "01", "1 ", " 1", "1\n\n", "4294967296",
                                           "99999999999", "0x10", "1\r\n"};
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        uint32_t v = 0;
        CHECK(fresh_imagefs(&img) == 0);
        CHECK(write_floor_file(&img, "0") == 0 && store_read(&img, &v) == 0 && v == 0);
        CHECK(write_floor_file(&img, "42\n") == 0 && store_read(&img, &v) == 0 && v == 42);
        CHECK(write_floor_file(&img, "4294967295") == 0 && store_read(&img, &v) == 0 && v == UINT32_MAX);
        for (size_t i = 0; i < ELEMENTSOF(junk); i++) {
                CHECK(write_floor_file(&img, junk[i]) == 0);
                CHECK(store_read(&img, &v) == -EBADMSG);
        }
        kos_imagefs_close(&img);
}

TEST(rollback_floor_junk_or_fifo_fails_safe_and_says_so) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_rollback_floor f;
        struct kos_error why = KOS_ERROR_NULL;
        uint32_t v;
        CHECK(fresh_imagefs(&img) == 0);
        CHECK(write_floor_file(&img, "junk") == 0);
        /* No manifest in active authenticates (no keyring): derived, 0, loudly. */
        CHECK(kos_rollback_floor_read(&img, NULL, &f) == 0);
        CHECK(f.source == KOS_FLOOR_SOURCE_DERIVED && strstr(f.warning, "rollback-floor"));
        CHECK(unlinkat(img.root_fd, "boot-state/rollback-floor", 0) == 0);
        CHECK(mkfifoat(img.root_fd, "boot-state/rollback-floor", 0644) == 0);
        CHECK(store_read(&img, &v) == -EBADMSG); /* and did not block */
        CHECK(kos_rollback_floor_read(&img, NULL, &f) == 0 && f.source == KOS_FLOOR_SOURCE_DERIVED);
        CHECK(strstr(f.warning, "not a regular file"));
        /* Raising replaces what cannot be read. */
        CHECK(kos_rollback_floor_raise(&img, 3, &why) == 0);
        CHECK(store_read(&img, &v) == 0 && v == 3);
        kos_imagefs_close(&img);
}

TEST(rollback_check_rejects_below_the_floor_with_its_reason) {
        struct kos_manifest m = {.security_version = 1};
        struct kos_candidate c = {0};
        CHECK(kos_check_rollback(&m, 1, &c));
        CHECK(kos_check_rollback(&m, 0, &c));
        CHECK(!kos_check_rollback(&m, 2, &c));
        CHECK(c.verdict == KOS_VERDICT_REJECTED && c.reason == KOS_REASON_ROLLBACK);
        CHECK(strcmp(kos_reason_to_string(c.reason), "rollback") == 0);
        CHECK(strcmp(c.detail, "security_version 1 is below this device's floor 2") == 0);
}
