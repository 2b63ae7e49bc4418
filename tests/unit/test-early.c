/* SPDX-License-Identifier: MIT */
/* The PID 1 helpers' rules that run without a machine: the device matcher
 * (through the porting layer that stands in for /sys/class/block and
 * libblkid: no disks here), the handoff format, the dm-verity superblock. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "early.h"
#include "verity.h"
#include "test.h"
#include "util.h"

/* --- finding a device: two matches are refused, never guessed --- */

static const struct early_device fake_disks[] = {
        {.path = "/dev/vda", .partuuid = ""},
        {.path = "/dev/vda1", .type = "ext4", .uuid = "aaaa-1111", .label = "KOS-IMAGEFS", .partlabel = "kos-imagefs",
         .partuuid = "p-aaaa"},
        {.path = "/dev/vda2", .type = "ext4", .uuid = "dddd-4444", .label = "KOS-DATA", .partlabel = "KOS-DATA",
         .partuuid = "p-dddd"},
        {.path = "/dev/vdb", .partuuid = ""},
        {.path = "/dev/vdb1", .type = "ext4", .uuid = "bbbb-2222", .label = "KOS-IMAGEFS", .partlabel = "kos-imagefs",
         .partuuid = "p-bbbb"},
        {.path = "/dev/vdc1", .type = "ext4", .uuid = "cccc-3333", .label = "OTHER", .partuuid = "p-cccc"},
        {.path = "/dev/vdd1", .type = "ext4", .uuid = "cccc-3333", .label = "CLONE", .partuuid = "p-clone"},
};
static size_t fake_count = ELEMENTSOF(fake_disks);
static unsigned fake_listings;

static int fake_lister(struct early_device *devices, size_t max, size_t *ret_n) {
        size_t n = fake_count < max ? fake_count : max;

        memcpy(devices, fake_disks, n * sizeof *devices);
        *ret_n = n;
        fake_listings++;
        return 0;
}

TEST(device_matcher_refuses_two_devices_with_the_same_label) {
        size_t index = 99, n = 0;

        CHECK(early_match_devices(fake_disks, ELEMENTSOF(fake_disks), "LABEL=KOS-IMAGEFS", &index, &n) == -ENOTUNIQ);
        CHECK(n == 2);
        CHECK(early_match_devices(fake_disks, ELEMENTSOF(fake_disks), "UUID=cccc-3333", &index, &n) == -ENOTUNIQ);
        CHECK(n == 2);
        /* With only the first disk there, it is that one. */
        CHECK(early_match_devices(fake_disks, 3, "LABEL=KOS-IMAGEFS", &index, &n) == 0);
        CHECK(index == 1 && n == 1);
}

TEST(device_matcher_counts_a_device_matching_two_alternatives_once) {
        size_t index = 99, n = 0;

        CHECK(early_match_devices(fake_disks, ELEMENTSOF(fake_disks), "LABEL=KOS-DATA|PARTLABEL=KOS-DATA", &index, &n) == 0);
        CHECK(index == 2 && n == 1);
        CHECK(early_match_devices(fake_disks, ELEMENTSOF(fake_disks), "UUID=AAAA-1111", &index, &n) == 0); /* any case */
        CHECK(index == 1);
        CHECK(early_match_devices(fake_disks, ELEMENTSOF(fake_disks), "LABEL=NOPE", &index, &n) == -ENOENT);
        CHECK(n == 0);
        /* A bare disk holds no filesystem: a path names it only with one. */
        CHECK(early_match_devices(fake_disks, ELEMENTSOF(fake_disks), "/dev/vda", &index, &n) == -ENOENT);
}

TEST(find_device_fails_at_once_when_two_devices_match) {
        int (*saved)(struct early_device *, size_t, size_t *) = early_device_lister;
        struct early_device dev;

        early_device_lister = fake_lister;
        fake_count = ELEMENTSOF(fake_disks);
        fake_listings = 0;
        int r = early_find_device("LABEL=KOS-IMAGEFS", 60000, &dev);
        unsigned listings = fake_listings;
        int r_one = early_find_device("LABEL=KOS-DATA", 0, &dev);
        early_device_lister = saved;
        CHECK(r == -ENOTUNIQ);
        CHECK(listings == 1); /* no waiting for one of them to go away */
        CHECK(r_one == 0 && strcmp(dev.path, "/dev/vda2") == 0);
}

TEST(identified_device_must_have_the_handed_on_partition_uuid) {
        int (*saved)(struct early_device *, size_t, size_t *) = early_device_lister;
        struct early_device dev;

        early_device_lister = fake_lister;
        fake_count = ELEMENTSOF(fake_disks);
        int ok = early_find_identified_device("aaaa-1111", "P-AAAA", 0, &dev);
        int other = early_find_identified_device("aaaa-1111", "p-bbbb", 0, &dev);
        int clone = early_find_identified_device("cccc-3333", "p-cccc", 0, &dev);
        int bad = early_find_identified_device("x|UUID=cccc-3333", "p-cccc", 0, &dev);
        early_device_lister = saved;
        CHECK(ok == 0);
        CHECK(other == -EXDEV);
        CHECK(clone == -ENOTUNIQ);
        CHECK(bad == -EINVAL);
}

/* --- the handoff: one format, built and read by the same code --- */

static const struct early_handoff good_handoff = {
        .manifest_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        .imagefs_uuid = "4b9c6eaa-0000-4000-8000-000000000001",
        .imagefs_partuuid = "none",
};

TEST(handoff_format_is_the_signed_cmdline_then_four_parameters) {
        char out[1024];
        struct early_handoff h;

        CHECK(early_handoff_format("console=ttyS0 quiet", &good_handoff, out, sizeof out) == 0);
        CHECK(strcmp(out, "console=ttyS0 quiet kos.manifest=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                          " kos.imagefs=UUID=4b9c6eaa-0000-4000-8000-000000000001 kos.imagefs_partuuid=none"
                          " kos.tpm_marker=0") == 0);
        strcat(out, "\n"); /* as /proc/cmdline has it */
        CHECK(early_handoff_parse(out, &h) == 0);
        CHECK(memcmp(&h, &good_handoff, sizeof h) == 0);
        CHECK(early_handoff_format("", &good_handoff, out, sizeof out) == 0);
        CHECK(strncmp(out, "kos.manifest=", 13) == 0);
        CHECK(early_handoff_parse(out, &h) == 0);
        CHECK(early_handoff_format("console=ttyS0", &good_handoff, out, 100) == -E2BIG);
}

/* kos.tpm_marker=1: the Boot Kernel found a TPM and extends PCR 15 with
 * the marker, so the System Kernel must extend the leave event or stop
 * (test-keystore.c). Exactly 0 or 1, always there. */
TEST(handoff_says_whether_the_boot_kernel_extended_the_tpm_marker) {
        char out[1024], text[1100];
        struct early_handoff h, marked = good_handoff;

        marked.tpm_marker = true;
        CHECK(early_handoff_format("quiet", &marked, out, sizeof out) == 0);
        size_t len = strlen(out);
        CHECK(len > 17 && strcmp(out + len - 17, " kos.tpm_marker=1") == 0);
        CHECK(early_handoff_parse(out, &h) == 0 && h.tpm_marker);
        CHECK(memcmp(&h, &marked, sizeof h) == 0);
        static const char *const bad[] = {"2", "", "10", "01", "yes", "1 kos.tpm_marker=1"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                snprintf(text, sizeof text, "%.*s%s", (int)(len - 1), out, bad[i]);
                CHECK(early_handoff_parse(text, &h) == -EBADMSG);
        }
        out[len - 17] = '\0'; /* the marker parameter missing */
        CHECK(early_handoff_parse(out, &h) == -EBADMSG);
}

TEST(handoff_parse_rejects_anything_after_or_inside_the_handoff) {
        char text[1024];
        struct early_handoff h;

        early_handoff_format("console=ttyS0", &good_handoff, text, sizeof text);
        strcat(text, " kos.init=/bin/sh");
        CHECK(early_handoff_parse(text, &h) == -EBADMSG);
        CHECK(early_handoff_parse("console=ttyS0", &h) == -EBADMSG);
        CHECK(early_handoff_parse("kos.manifest=0123 kos.imagefs=UUID=a kos.imagefs_partuuid=none kos.tpm_marker=0", &h) ==
              -EBADMSG);
        CHECK(early_handoff_parse("kos.manifest=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef "
                                  "kos.imagefs=LABEL=x kos.imagefs_partuuid=none kos.tpm_marker=0", &h) == -EBADMSG);
        CHECK(early_handoff_parse("kos.manifest=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef "
                                  "kos.imagefs=UUID=a|b kos.imagefs_partuuid=none kos.tpm_marker=0", &h) == -EBADMSG);
        /* The last kos.manifest= starts the handoff: an earlier one is part of
         * the signed cmdline, which the caller compares as a whole. */
        char twice[2048];
        snprintf(twice, sizeof twice, "kos.manifest=%064d %s", 0, text);
        CHECK(early_handoff_parse(twice, &h) == -EBADMSG);
        struct early_handoff bad = good_handoff;
        bad.imagefs_uuid[3] = ' ';
        CHECK(early_handoff_format("", &bad, text, sizeof text) == -EINVAL);
}

/* --- the dm-verity superblock: only what the signed manifest implies --- */

static void make_superblock(uint8_t sb[static KOS_VERITY_SUPERBLOCK_SIZE], uint64_t data_blocks) {
        uint32_t v;
        uint16_t salt_size = htole16(32);
        uint64_t blocks = htole64(data_blocks);

        memset(sb, 0, KOS_VERITY_SUPERBLOCK_SIZE);
        memcpy(sb, "verity\0\0", 8);
        v = htole32(1);
        memcpy(sb + 8, &v, 4);
        memcpy(sb + 12, &v, 4);
        memcpy(sb + 32, "sha256", 6);
        v = htole32(4096);
        memcpy(sb + 64, &v, 4);
        memcpy(sb + 68, &v, 4);
        memcpy(sb + 72, &blocks, 8);
        memcpy(sb + 80, &salt_size, 2);
        memset(sb + 88, 0x5a, 32);
}

TEST(verity_superblock_must_match_the_signed_hash_offset) {
        uint8_t sb[KOS_VERITY_SUPERBLOCK_SIZE], salt[KOS_VERITY_MAX_SALT];
        size_t salt_size = 0;
        struct kos_error error = KOS_ERROR_NULL;

        make_superblock(sb, 3);
        CHECK(kos_verity_check_superblock(sb, sizeof sb, 3 * 4096, salt, &salt_size, &error) == 0);
        CHECK(salt_size == 32 && salt[0] == 0x5a && salt[31] == 0x5a);
        /* A shorter data area (the truncation a changed superblock could ask for). */
        make_superblock(sb, 2);
        CHECK(kos_verity_check_superblock(sb, sizeof sb, 3 * 4096, salt, &salt_size, &error) == -EBADMSG);
        CHECK(strstr(error.msg, "data blocks"));
        make_superblock(sb, 3);
        memcpy(sb + 32, "sha1\0\0", 6);
        CHECK(kos_verity_check_superblock(sb, sizeof sb, 3 * 4096, salt, &salt_size, &error) == -EBADMSG);
        CHECK(strstr(error.msg, "hash algorithm"));
        make_superblock(sb, 3);
        sb[64 + 1] = 0x02; /* data block size 512 + 4096 */
        CHECK(kos_verity_check_superblock(sb, sizeof sb, 3 * 4096, salt, &salt_size, &error) == -EBADMSG);
        make_superblock(sb, 3);
        sb[81] = 0x10; /* salt size 4096 + 32 */
        CHECK(kos_verity_check_superblock(sb, sizeof sb, 3 * 4096, salt, &salt_size, &error) == -EBADMSG);
        make_superblock(sb, 3);
        sb[0] = 'V';
        CHECK(kos_verity_check_superblock(sb, sizeof sb, 3 * 4096, salt, &salt_size, &error) == -EBADMSG);
        make_superblock(sb, 3);
        CHECK(kos_verity_check_superblock(sb, 100, 3 * 4096, salt, &salt_size, &error) == -EBADMSG);
}

/* The same check read from a file: exactly the 512 bytes at hash_offset; a
 * file that ends before them has no superblock. */
TEST(verity_superblock_is_read_at_the_signed_hash_offset_only) {
        uint8_t sb[KOS_VERITY_SUPERBLOCK_SIZE], salt[KOS_VERITY_MAX_SALT];
        size_t salt_size = 0;
        char path[512];
        struct kos_error error = KOS_ERROR_NULL;

        snprintf(path, sizeof path, "%s/image", test_tmpdir());
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        make_superblock(sb, 3);
        CHECK(pwrite(fd, sb, sizeof sb, 3 * 4096) == (ssize_t)sizeof sb);
        CHECK(kos_verity_read_superblock(fd, 3 * 4096, salt, &salt_size, &error) == 0);
        CHECK(salt_size == 32 && salt[0] == 0x5a);
        CHECK(kos_verity_read_superblock(fd, 2 * 4096, salt, &salt_size, &error) == -EBADMSG);
        CHECK(strstr(error.msg, "no dm-verity superblock"));
        CHECK(ftruncate(fd, 3 * 4096 + 511) == 0);
        CHECK(kos_verity_read_superblock(fd, 3 * 4096, salt, &salt_size, &error) == -EBADMSG);
        CHECK(strstr(error.msg, "no dm-verity superblock"));
        CHECK(kos_verity_read_superblock(fd, UINT64_MAX - 100, salt, &salt_size, &error) == -EBADMSG);
}
