/* SPDX-License-Identifier: MIT */
/* The scrub that confirms a boot with hash-tree components: the devices
 * boot.json names, and the rule that the unconfirmed marker may go only once
 * every device was read to its end. dm-verity devices cannot be made here
 * (no root, no device-mapper): the reads run on regular files through the
 * porting layer (kos_scrub_ops.open), and the real open is checked on what
 * it must refuse. The whole path runs in tests/vm/test-hash-tree.sh. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot-info.h"
#include "scrub.h"
#include "test.h"

#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEAD                                                                                       \
        "{\"manifest\": {\"name\": \"tree\", \"id\": \"" ID64 "\", \"version\": 2}, "              \
        "\"imagefs\": {\"uuid\": \"4b9c6eaa\", \"partuuid\": \"none\", \"device\": \"/dev/vda1\"}, "   \
        "\"rw\": \"tmpfs\", \"data\": {\"state\": \"mounted\", \"device\": \"/dev/vda2\"}, "          \
        "\"timings\": {\"init_start\": 1, \"modules_loaded\": 1, \"imagefs_mounted\": 1, "          \
        "\"manifest_verified\": 1, \"layers_mounted\": 1, \"root_assembled\": 1}"

static int read_boot_json(const char *components, struct kos_boot_info *ret) {
        char path[512], text[4096];

        snprintf(path, sizeof path, "%s/boot.json", test_tmpdir());
        snprintf(text, sizeof text, "%s, \"components\": %s}", HEAD, components ? components : "[]");
        if (kos_write_file_atomic_at(AT_FDCWD, path, text, strlen(text), 0644) < 0)
                return -EIO;
        return kos_boot_info_read(path, ret);
}

static const char *component(char buf[static 512], const char *name, const char *device, const char *verify,
                             const char *verity) {
        snprintf(buf, 512,
                 "{\"name\": \"%s\", \"type\": \"erofs\", \"sha256\": \"" ID64 "\", \"device\": \"%s\", "
                 "\"verity\": %s, \"encrypted\": false, \"verify\": \"%s\", \"mount_seconds\": 0.5}",
                 name, device, verity, verify);
        return buf;
}

TEST(boot_info_lists_the_hash_tree_devices_in_manifest_order) {
        struct kos_boot_info info;
        char a[512], b[512], c[512], list[2048];

        snprintf(list, sizeof list, "[%s, %s, %s]", component(a, "base", "/dev/mapper/kos-base-verity", "hash-tree", "true"),
                 component(b, "app", "/dev/loop2", "sha256", "false"),
                 component(c, "runtime", "/dev/mapper/kos-runtime-verity", "hash-tree", "true"));
        CHECK(read_boot_json(list, &info) == 0);
        CHECK(info.n_hash_tree == 2);
        CHECK(strcmp(info.hash_tree[0].component, "base") == 0);
        CHECK(strcmp(info.hash_tree[0].device, "/dev/mapper/kos-base-verity") == 0);
        CHECK(strcmp(info.hash_tree[1].component, "runtime") == 0);
        CHECK(strcmp(info.hash_tree[1].device, "/dev/mapper/kos-runtime-verity") == 0);
}

TEST(boot_info_without_hash_tree_components_names_no_device) {
        struct kos_boot_info info;
        char a[512], list[1024];

        CHECK(read_boot_json(NULL, &info) == 0 && info.n_hash_tree == 0);
        snprintf(list, sizeof list, "[%s]", component(a, "base", "/dev/mapper/kos-base-verity", "sha256", "true"));
        CHECK(read_boot_json(list, &info) == 0 && info.n_hash_tree == 0);
}

TEST(boot_info_refuses_a_hash_tree_component_without_a_usable_device) {
        static const char *const devices[] = {"mapper/kos-base-verity", "/dev/", "/dev/../etc/shadow",
                                              "/dev/mapper/../../proc/self/mem", "/etc/passwd"};
        struct kos_boot_info info;
        char a[512], list[1024], long_device[300];

        for (size_t i = 0; i < ELEMENTSOF(devices); i++) {
                snprintf(list, sizeof list, "[%s]", component(a, "base", devices[i], "hash-tree", "true"));
                CHECK(read_boot_json(list, &info) == -EBADMSG);
        }
        memset(long_device, 'x', sizeof long_device - 1);
        memcpy(long_device, "/dev/", 5);
        long_device[sizeof long_device - 1] = '\0';
        snprintf(list, sizeof list, "[%s]", component(a, "base", long_device, "hash-tree", "true"));
        CHECK(read_boot_json(list, &info) == -EBADMSG);
        /* Not mapped with dm-verity: nothing would check what is read. */
        snprintf(list, sizeof list, "[%s]", component(a, "base", "/dev/loop0", "hash-tree", "false"));
        CHECK(read_boot_json(list, &info) == -EBADMSG);
        CHECK(read_boot_json("[{\"name\": \"base\", \"verify\": \"hash-tree\", \"verity\": true}]", &info) == -EBADMSG);
        CHECK(read_boot_json("{\"base\": 1}", &info) == -EBADMSG);
        /* A name with a dot-dot is not a component name. */
        snprintf(list, sizeof list, "[%s]", component(a, "../x", "/dev/dm-0", "hash-tree", "true"));
        CHECK(read_boot_json(list, &info) == -EBADMSG);
        /* A device name with two dots that is no ".." component is fine. */
        snprintf(list, sizeof list, "[%s]", component(a, "base", "/dev/mapper/kos-a..b-verity", "hash-tree", "true"));
        CHECK(read_boot_json(list, &info) == 0 && info.n_hash_tree == 1);
}

/* boot.json has one owner: what kos_boot_info_write() writes,
 * kos_boot_info_read() reads back member for member. */
TEST(boot_info_written_by_the_system_kernel_reads_back_the_same) {
        static struct kos_boot_info in, out;
        char path[512];

        in = (struct kos_boot_info){.version = 7, .n_components = 2, .rw = "tmpfs", .data_state = "formatted",
                                    .data_device = "/dev/vda3", .imagefs_uuid = "4b9c6eaa-1", .imagefs_partuuid = "none",
                                    .imagefs_device = "/dev/vda2", .timings = {1.5, 2.5, 3.5, 4.5, 5.5, 6.5}};
        snprintf(in.name, sizeof in.name, "release-7");
        memset(in.id, 0xab, sizeof in.id);
        in.components[0] = (struct kos_boot_info_component){.name = "base", .type = KOS_COMPONENT_SQUASHFS,
                                                            .device = "/dev/mapper/kos-base-verity", .verity = true,
                                                            .verify = KOS_VERIFY_HASH_TREE, .mount_seconds = 0.25};
        in.components[1] = (struct kos_boot_info_component){.name = "app", .type = KOS_COMPONENT_EROFS,
                                                            .device = "/dev/mapper/kos-app-crypt", .encrypted = true,
                                                            .verify = KOS_VERIFY_SHA256, .mount_seconds = 1};
        memset(in.components[0].sha256, 0x11, KOS_SHA256_LEN);
        memset(in.components[1].sha256, 0x22, KOS_SHA256_LEN);
        snprintf(path, sizeof path, "%s/boot.json", test_tmpdir());
        CHECK(kos_boot_info_write(path, &in) == 0);
        CHECK(kos_boot_info_read(path, &out) == 0);
        CHECK(strcmp(out.name, in.name) == 0 && out.version == 7 && memcmp(out.id, in.id, sizeof in.id) == 0);
        CHECK(strcmp(out.imagefs_uuid, in.imagefs_uuid) == 0 && strcmp(out.imagefs_partuuid, "none") == 0 &&
              strcmp(out.imagefs_device, "/dev/vda2") == 0);
        CHECK(strcmp(out.rw, "tmpfs") == 0 && strcmp(out.data_state, "formatted") == 0 &&
              strcmp(out.data_device, "/dev/vda3") == 0);
        CHECK(out.timings.init_start == 1.5 && out.timings.root_assembled == 6.5);
        CHECK(out.n_components == 2);
        for (size_t i = 0; i < 2; i++) {
                const struct kos_boot_info_component *a = &in.components[i], *b = &out.components[i];
                CHECK(strcmp(a->name, b->name) == 0 && a->type == b->type && strcmp(a->device, b->device) == 0);
                CHECK(memcmp(a->sha256, b->sha256, KOS_SHA256_LEN) == 0 && a->verity == b->verity &&
                      a->encrypted == b->encrypted && a->verify == b->verify && a->mount_seconds == b->mount_seconds);
        }
        CHECK(out.n_hash_tree == 1 && strcmp(out.hash_tree[0].component, "base") == 0 &&
              strcmp(out.hash_tree[0].device, "/dev/mapper/kos-base-verity") == 0);
        /* What the parser would refuse is never written. */
        in.components[0].verity = false;
        CHECK(kos_boot_info_write(path, &in) == -EINVAL);
        in.components[0].verity = true;
        snprintf(in.rw, sizeof in.rw, "(null)");
        CHECK(kos_boot_info_write(path, &in) == -EINVAL);
}

TEST(boot_info_refuses_a_component_without_every_member) {
        struct kos_boot_info info;
        static const char *const partial[] = {
                "[{\"name\": \"base\", \"type\": \"erofs\", \"device\": \"/dev/loop0\", \"verity\": false, \"verify\": \"sha256\"}]",
                "[{\"name\": \"base\", \"type\": \"ntfs\", \"sha256\": \"" ID64 "\", \"device\": \"/dev/loop0\", "
                "\"verity\": false, \"encrypted\": false, \"verify\": \"sha256\", \"mount_seconds\": 1}]",
                "[{\"name\": \"base\", \"type\": \"erofs\", \"sha256\": \"0123\", \"device\": \"/dev/loop0\", "
                "\"verity\": false, \"encrypted\": false, \"verify\": \"sha256\", \"mount_seconds\": 1}]",
                "[{\"name\": \"base\", \"type\": \"erofs\", \"sha256\": \"" ID64 "\", \"device\": \"/dev/loop0\", "
                "\"verity\": false, \"encrypted\": false, \"verify\": \"md5\", \"mount_seconds\": 1}]",
        };

        for (size_t i = 0; i < ELEMENTSOF(partial); i++)
                CHECK(read_boot_json(partial[i], &info) == -EBADMSG);
}

/* --- the scrub on regular files (a stand-in for dm-verity devices) --- */

/* Writes size bytes of a pattern to <tmp>/<name>. */
static int make_file(const char *name, size_t size) {
        char path[512];
        _cleanup_free_ char *data = malloc(size ? size : 1);

        if (!data)
                return -ENOMEM;
        for (size_t i = 0; i < size; i++)
                data[i] = (char)('a' + i % 26);
        snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
        return kos_write_file_atomic_at(AT_FDCWD, path, data, size, 0644);
}

struct fake {
        uint64_t extra;      /* added to the size the open reports: the file then ends early */
        bool open_directory; /* open the directory instead: every read fails (EISDIR) */
        unsigned progress_calls;
        uint64_t last_bytes;
        bool bytes_went_back;
};

static struct fake fake;

/* Opens <tmp>/<path> as a regular file, and says its size (+ extra). */
static int fake_open(const char *path, int *ret_fd, uint64_t *ret_size, enum kos_scrub_result *ret_result) {
        char full[512];
        struct stat st;

        snprintf(full, sizeof full, "%s/%s", test_tmpdir(), fake.open_directory ? "." : path);
        int fd = open(full, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                *ret_result = KOS_SCRUB_CANNOT_OPEN;
                return -errno;
        }
        (void)fstat(fd, &st);
        *ret_fd = fd;
        *ret_size = (uint64_t)st.st_size + fake.extra;
        *ret_result = KOS_SCRUB_DONE;
        return 0;
}

static void fake_progress(const struct kos_scrub_report *report, void *userdata) {
        fake.progress_calls++;
        fake.bytes_went_back = fake.bytes_went_back || report->bytes < fake.last_bytes;
        fake.last_bytes = report->bytes;
}

static const struct kos_scrub_ops fake_ops = {.open = fake_open, .progress = fake_progress};

static const struct kos_boot_info_hash_tree two_devices[] = {{"base", "base.img"}, {"runtime", "runtime.img"}};

TEST(scrub_confirms_only_once_every_device_was_read_to_its_end) {
        struct kos_scrub_report report;

        fake = (struct fake){0};
        /* Not a multiple of the chunk: the last read is a short one. */
        CHECK(make_file("base.img", 3 * KOS_SCRUB_CHUNK + 4096) == 0);
        CHECK(make_file("runtime.img", 8192) == 0);
        CHECK(kos_scrub_run(two_devices, 2, &fake_ops, &report) == 0);
        CHECK(report.result == KOS_SCRUB_DONE && report.n_done == 2);
        CHECK(report.total == 3 * KOS_SCRUB_CHUNK + 4096 + 8192 && report.bytes == report.total);
        CHECK(kos_scrub_may_confirm(&report, 2));
        CHECK(fake.progress_calls == 5 && !fake.bytes_went_back);
        /* The same report does not confirm a boot of three devices. */
        CHECK(!kos_scrub_may_confirm(&report, 3));
}

TEST(scrub_of_no_device_reads_nothing_and_may_confirm) {
        struct kos_scrub_report report;

        fake = (struct fake){0};
        CHECK(kos_scrub_run(two_devices, 0, &fake_ops, &report) == 0);
        CHECK(report.bytes == 0 && report.total == 0 && kos_scrub_may_confirm(&report, 0));
}

TEST(scrub_does_not_confirm_when_a_device_ends_before_its_size) {
        struct kos_scrub_report report;

        fake = (struct fake){.extra = 4096};
        CHECK(make_file("base.img", KOS_SCRUB_CHUNK) == 0);
        CHECK(make_file("runtime.img", 8192) == 0);
        CHECK(kos_scrub_run(two_devices, 2, &fake_ops, &report) == -ENODATA);
        CHECK(report.result == KOS_SCRUB_ENDED_EARLY && report.n_done == 0);
        CHECK(strstr(report.error.msg, "base (base.img): ended at byte 1048576 of 1052672") != NULL);
        CHECK(!kos_scrub_may_confirm(&report, 2));
}

TEST(scrub_does_not_confirm_when_a_read_fails) {
        struct kos_scrub_report report;

        fake = (struct fake){.open_directory = true};
        CHECK(kos_scrub_run(two_devices, 2, &fake_ops, &report) < 0);
        CHECK(report.result == KOS_SCRUB_READ_ERROR && report.n_done == 0);
        CHECK(strstr(report.error.msg, "base (base.img): read error at byte 0") != NULL);
        CHECK(!kos_scrub_may_confirm(&report, 2));
}

TEST(scrub_does_not_confirm_and_reads_nothing_when_a_device_is_missing) {
        struct kos_scrub_report report;

        fake = (struct fake){0};
        CHECK(make_file("base.img", KOS_SCRUB_CHUNK) == 0);
        CHECK(kos_scrub_run(two_devices, 2, &fake_ops, &report) == -ENOENT);
        CHECK(report.result == KOS_SCRUB_CANNOT_OPEN && report.bytes == 0 && fake.progress_calls == 0);
        CHECK(strstr(report.error.msg, "runtime (runtime.img)") != NULL);
        CHECK(!kos_scrub_may_confirm(&report, 2));
}

TEST(scrub_may_not_confirm_a_report_whose_bytes_do_not_add_up) {
        struct kos_scrub_report report = {.result = KOS_SCRUB_DONE, .n_done = 2, .bytes = 4096, .total = 8192};

        CHECK(!kos_scrub_may_confirm(&report, 2));
        report.bytes = 8192;
        CHECK(kos_scrub_may_confirm(&report, 2));
        report.result = KOS_SCRUB_READ_ERROR;
        CHECK(!kos_scrub_may_confirm(&report, 2));
}

/* --- the real open: only a dm-verity block device --- */

TEST(scrub_open_refuses_a_symlink_a_regular_file_and_a_fifo_without_blocking) {
        char file[512], link[512], fifo[512];
        enum kos_scrub_result result;
        uint64_t size;
        int fd = -1;

        snprintf(file, sizeof file, "%s/base.img", test_tmpdir());
        snprintf(link, sizeof link, "%s/link", test_tmpdir());
        snprintf(fifo, sizeof fifo, "%s/fifo", test_tmpdir());
        CHECK(make_file("base.img", 4096) == 0);
        CHECK(symlink(file, link) == 0 && mkfifo(fifo, 0600) == 0);
        CHECK(kos_scrub_open_device(link, &fd, &size, &result) == -ELOOP && result == KOS_SCRUB_CANNOT_OPEN);
        CHECK(kos_scrub_open_device(file, &fd, &size, &result) == -ENOTBLK && result == KOS_SCRUB_NOT_VERITY);
        CHECK(kos_scrub_open_device(fifo, &fd, &size, &result) == -ENOTBLK && result == KOS_SCRUB_NOT_VERITY);
        CHECK(kos_scrub_open_device("/dev/null", &fd, &size, &result) == -ENOTBLK);
        CHECK(fd == -1);
}

TEST(scrub_takes_only_a_dm_verity_uuid) {
        CHECK(kos_scrub_uuid_is_verity("CRYPT-VERITY-kos-base-verity\n"));
        CHECK(!kos_scrub_uuid_is_verity("CRYPT-LUKS2-0a1b-kos-app-crypt\n"));
        CHECK(!kos_scrub_uuid_is_verity("CRYPT-VERITY"));
        CHECK(!kos_scrub_uuid_is_verity(""));
}

TEST(scrub_result_to_string_names_every_result) {
        for (int r = KOS_SCRUB_DONE; r <= KOS_SCRUB_ENDED_EARLY; r++)
                CHECK(strcmp(kos_scrub_result_to_string((enum kos_scrub_result)r), "?") != 0);
}
