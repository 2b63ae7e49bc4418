/* SPDX-License-Identifier: MIT */
/* Hashing, the active list and atomic writes, on real files. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "imagefs.h"
#include "select.h"
#include "test.h"

static int make_file(const char *name, const void *data, size_t len) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0 && kos_write_all(fd, data, len) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static struct kos_hash_job job_for(int fd, size_t size, const char *content) {
        struct kos_hash_job j = {.fd = fd, .size = size, .copy_fd = -1};
        if (kos_sha256(content, strlen(content), j.expected) < 0)
                memset(j.expected, 0, sizeof j.expected); /* then the job reports a mismatch */
        return j;
}

TEST(hash_jobs_match_and_mismatch) {
        int a = make_file("a", "alpha", 5), b = make_file("b", "beta", 4);
        struct kos_hash_job jobs[2] = {job_for(a, 5, "alpha"), job_for(b, 4, "betA")};
        CHECK(kos_hash_jobs(jobs, 2, NULL, NULL) == 0);
        close(a);
        close(b);
        CHECK(jobs[0].status == KOS_HASH_MATCH);
        CHECK(jobs[1].status == KOS_HASH_MISMATCH);
}

TEST(hash_jobs_detect_file_shorter_or_longer_than_declared) {
        int a = make_file("a", "alpha", 5);
        struct kos_hash_job jobs[2] = {job_for(a, 6, "alpha"), job_for(a, 4, "alph")};
        /* Separate runs: in one run the first failure would cancel the second. */
        CHECK(kos_hash_jobs(&jobs[0], 1, NULL, NULL) == 0);
        CHECK(kos_hash_jobs(&jobs[1], 1, NULL, NULL) == 0);
        close(a);
        CHECK(jobs[0].status == KOS_HASH_SIZE_CHANGED);
        CHECK(jobs[1].status == KOS_HASH_SIZE_CHANGED);
}

TEST(hash_jobs_report_first_failure_in_order) {
        /* Many jobs, every other one wrong: whatever the thread timing, job 1
         * must have run and failed, and nothing before it may be cancelled. */
        struct kos_hash_job jobs[16];
        int fd = make_file("x", "x", 1);
        for (int i = 0; i < 16; i++)
                jobs[i] = job_for(fd, 1, i % 2 ? "y" : "x");
        CHECK(kos_hash_jobs(jobs, 16, NULL, NULL) == 0);
        close(fd);
        CHECK(jobs[0].status == KOS_HASH_MATCH);
        CHECK(jobs[1].status == KOS_HASH_MISMATCH);
}

TEST(hash_jobs_copy_exactly_the_hashed_bytes) {
        char big[3 << 20];
        for (size_t i = 0; i < sizeof big; i++)
                big[i] = (char)(i * 7);
        int fd = make_file("big", big, sizeof big);
        int copy = memfd_create("copy", MFD_CLOEXEC);
        struct kos_hash_job job = {.fd = fd, .size = sizeof big, .copy_fd = copy, .compute_only = true};
        CHECK(kos_hash_jobs(&job, 1, NULL, NULL) == 0 && job.status == KOS_HASH_MATCH);
        uint8_t want[KOS_SHA256_LEN];
        CHECK(kos_sha256(big, sizeof big, want) == 0 && kos_digest_equal(want, job.digest));
        static char back[3 << 20];
        CHECK(pread(copy, back, sizeof back, 0) == (ssize_t)sizeof back);
        close(fd);
        close(copy);
        CHECK(memcmp(back, big, sizeof big) == 0);
}

static void progress_count(uint64_t done, uint64_t total, void *userdata) {
        (*(int *)userdata)++;
}

TEST(hash_jobs_report_final_progress) {
        int calls = 0, fd = make_file("a", "alpha", 5);
        struct kos_hash_job job = job_for(fd, 5, "alpha");
        CHECK(kos_hash_jobs(&job, 1, progress_count, &calls) == 0);
        close(fd);
        CHECK(calls >= 1);
}

static int open_fresh_imagefs(struct kos_imagefs *img) {
        char path[512];
        snprintf(path, sizeof path, "%s/img", test_tmpdir());
        if (kos_imagefs_init(path) < 0)
                return -1;
        return kos_imagefs_open(path, img);
}

TEST(active_list_keeps_invalid_lines_as_entries) {
        struct kos_imagefs img;
        struct kos_active_list list;
        CHECK(open_fresh_imagefs(&img) == 0);
        const char text[] = "a\n\n../etc/passwd\nb\nc";
        CHECK(kos_write_file_atomic_at(img.root_fd, "active", text, strlen(text), 0644) == 0);
        CHECK(kos_active_read(&img, &list) == 0);
        kos_imagefs_close(&img);
        CHECK(list.n == 4);
        CHECK(list.entries[0].name_valid && strcmp(list.entries[0].name, "a") == 0);
        CHECK(!list.entries[1].name_valid);
        CHECK(strcmp(list.entries[3].name, "c") == 0);
}

TEST(active_list_caps_entries) {
        struct kos_imagefs img;
        struct kos_active_list list;
        char text[KOS_ACTIVE_MAX * 8 + 64];
        size_t len = 0;
        for (int i = 0; i < KOS_ACTIVE_MAX + 5; i++)
                len += (size_t)sprintf(text + len, "m%d\n", i);
        CHECK(open_fresh_imagefs(&img) == 0);
        CHECK(kos_write_file_atomic_at(img.root_fd, "active", text, len, 0644) == 0);
        CHECK(kos_active_read(&img, &list) == 0);
        kos_imagefs_close(&img);
        CHECK(list.n == KOS_ACTIVE_MAX && list.n_ignored == 5);
}

TEST(active_insert_first_last_and_remove) {
        struct kos_active_list list = {0};
        CHECK(kos_active_insert(&list, "a", true) == 0);
        CHECK(kos_active_insert(&list, "b", true) == 0);
        CHECK(kos_active_insert(&list, "c", false) == 0);
        CHECK(kos_active_insert(&list, "a", true) == 0); /* moves, not duplicates */
        CHECK(list.n == 3 && strcmp(list.entries[0].name, "a") == 0 && strcmp(list.entries[1].name, "b") == 0);
        kos_active_remove(&list, "b");
        CHECK(list.n == 2 && strcmp(list.entries[1].name, "c") == 0);
        CHECK(kos_active_insert(&list, "../x", true) == -EINVAL);
}

TEST(atomic_write_replaces_and_leaves_no_temporary) {
        struct kos_imagefs img;
        char *data = NULL;
        size_t len;
        CHECK(open_fresh_imagefs(&img) == 0);
        CHECK(kos_write_file_atomic_at(img.root_fd, "f", "one", 3, 0644) == 0);
        CHECK(kos_write_file_atomic_at(img.root_fd, "f", "two!", 4, 0644) == 0);
        CHECK(kos_read_file_at(img.root_fd, "f", 100, &data, &len) == 0);
        int same = len == 4 && memcmp(data, "two!", 4) == 0;
        free(data);
        char tmp[64];
        snprintf(tmp, sizeof tmp, ".tmp-f-%d", (int)getpid());
        int leftover = faccessat(img.root_fd, tmp, F_OK, 0) == 0;
        kos_imagefs_close(&img);
        CHECK(same && !leftover);
}

TEST(read_file_refuses_symlink_and_oversize) {
        char *data = NULL;
        size_t len;
        int fd = make_file("f", "12345", 5);
        close(fd);
        char target[512], link[512];
        snprintf(target, sizeof target, "%s/f", test_tmpdir());
        snprintf(link, sizeof link, "%s/l", test_tmpdir());
        CHECK(symlink(target, link) == 0);
        CHECK(kos_read_file_at(AT_FDCWD, link, 100, &data, &len) == -ELOOP);
        CHECK(kos_read_file_at(AT_FDCWD, target, 4, &data, &len) == -EFBIG);
        CHECK(kos_read_file_at(AT_FDCWD, target, 5, &data, &len) == 0 && len == 5);
        free(data);
}

TEST(read_file_refuses_fifo_without_blocking) {
        char *data = NULL;
        size_t len;
        char path[512];
        snprintf(path, sizeof path, "%s/fifo", test_tmpdir());
        CHECK(mkfifo(path, 0644) == 0);
        CHECK(kos_read_file_at(AT_FDCWD, path, 100, &data, &len) == -EBADFD);
        CHECK(kos_open_regular_at(AT_FDCWD, path, O_NOFOLLOW, NULL) == -EBADFD);
        /* A writer finds a new regular file, not the FIFO. */
        int fd = kos_create_file_at(AT_FDCWD, path, 0644);
        struct stat st;
        CHECK(fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode));
        close(fd);
}

TEST(select_with_no_active_file_is_a_result) {
        struct kos_imagefs img;
        struct kos_keyring ring = {0};
        struct kos_selection s;
        CHECK(open_fresh_imagefs(&img) == 0);
        CHECK(unlinkat(img.root_fd, "active", 0) == 0);
        CHECK(kos_select(&img, &ring, NULL, &s) == 0);
        kos_imagefs_close(&img);
        CHECK(s.selected == -1 && s.active_error == -ENOENT && s.n_candidates == 0);
        kos_selection_done(&s);
}

TEST(reason_strings_are_stable) {
        CHECK(strcmp(kos_reason_to_string(KOS_REASON_MANIFEST_MISSING), "manifest-missing") == 0);
        CHECK(strcmp(kos_reason_to_string(KOS_REASON_COMPONENT_HASH_MISMATCH), "component-hash-mismatch") == 0);
        for (int r = 0; r < _KOS_REASON_MAX; r++)
                CHECK(kos_reason_to_string((enum kos_reason)r) != NULL);
}

#include "bootstate.h"

TEST(boot_state_counts_down_durably_and_marks_good) {
        struct kos_imagefs img;
        struct kos_boot_state st;
        uint8_t id[KOS_SHA256_LEN];
        unsigned left = 99;
        CHECK(kos_sha256("manifest", 8, id) == 0);
        CHECK(open_fresh_imagefs(&img) == 0);
        CHECK(kos_boot_state_read(&img, id, &st) == 0 && st.kind == KOS_BOOT_STATE_NONE);
        CHECK(kos_boot_state_consume_try(&img, id, &left) == -ESTALE); /* not on trial */
        CHECK(kos_boot_state_set_tries(&img, id, 2) == 0);
        CHECK(kos_boot_state_consume_try(&img, id, &left) == 0 && left == 1);
        CHECK(kos_boot_state_consume_try(&img, id, &left) == 0 && left == 0);
        CHECK(kos_boot_state_consume_try(&img, id, &left) == -ESTALE);
        CHECK(kos_boot_state_read(&img, id, &st) == 0 && st.kind == KOS_BOOT_STATE_TRIES && st.tries_left == 0);
        CHECK(kos_boot_state_mark_good(&img, id) == 0);
        CHECK(kos_boot_state_read(&img, id, &st) == 0 && st.kind == KOS_BOOT_STATE_GOOD);
        CHECK(kos_boot_state_set_tries(&img, id, 3) == 0); /* a re-install puts it on trial again */
        CHECK(kos_boot_state_read(&img, id, &st) == 0 && st.kind == KOS_BOOT_STATE_TRIES && st.tries_left == 3);
        kos_imagefs_close(&img);
}

/* --- kos_check_components hands the kernel and initrd over early --- */

struct handover {
        int calls;
        char kernel[8], initrd[8];
        bool sealed;
};

static void record_handover(const struct kos_candidate *c, const struct kos_manifest *m, int kernel_fd,
                            int initrd_fd, void *userdata) {
        struct handover *h = userdata;
        h->calls++;
        h->sealed = (fcntl(kernel_fd, F_GET_SEALS) & F_SEAL_WRITE) && (fcntl(initrd_fd, F_GET_SEALS) & F_SEAL_WRITE);
        memset(h->kernel, 0, sizeof h->kernel);
        memset(h->initrd, 0, sizeof h->initrd);
        (void)!pread(kernel_fd, h->kernel, sizeof h->kernel - 1, 0);
        (void)!pread(initrd_fd, h->initrd, sizeof h->initrd - 1, 0);
}

/* An ImageFS in the temporary directory holding the given blob contents
 * under the hashes of "KERNEL", "INITRD" and "BASE"; returns the manifest. */
static struct kos_manifest *handover_fixture(struct kos_imagefs *img, const char *kernel, const char *initrd,
                                             const char *base) {
        const char *declared[3] = {"KERNEL", "INITRD", "BASE"}, *stored[3] = {kernel, initrd, base};
        char hex[3][KOS_SHA256_HEX_LEN + 1], path[512], json[1024];
        struct kos_error error = KOS_ERROR_NULL;
        struct kos_manifest *m = NULL;

        snprintf(path, sizeof path, "%s/img", test_tmpdir());
        if (kos_imagefs_init(path) < 0 || kos_imagefs_open(path, img) < 0)
                return NULL;
        for (int i = 0; i < 3; i++) {
                uint8_t d[KOS_SHA256_LEN];
                if (kos_sha256(declared[i], strlen(declared[i]), d) < 0)
                        return NULL;
                kos_hex_encode(d, KOS_SHA256_LEN, hex[i]);
                char name[600];
                snprintf(name, sizeof name, "img/components/%s", hex[i]);
                close(make_file(name, stored[i], strlen(stored[i])));
        }
        snprintf(json, sizeof json,
                 "{\"format\":1,\"name\":\"m\",\"version\":1,\"kernel\":{\"sha256\":\"%s\",\"size\":6},"
                 "\"initrd\":{\"sha256\":\"%s\",\"size\":6},\"cmdline\":\"\",\"components\":[{\"name\":\"base\","
                 "\"type\":\"squashfs\",\"sha256\":\"%s\",\"size\":4}]}",
                 hex[0], hex[1], hex[2]);
        if (kos_manifest_parse(json, strlen(json), &m, &error) < 0)
                return NULL;
        return m;
}

static bool run_handover(const char *kernel, const char *initrd, const char *base, struct handover *h,
                         struct kos_candidate *c) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_manifest *m = handover_fixture(&img, kernel, initrd, base);
        struct kos_select_options o = {
                .capture_boot_files = true, .boot_files_verified = record_handover, .boot_files_userdata = h};
        int kfd = -1, ifd = -1;

        memset(c, 0, sizeof *c);
        bool ok = m && kos_check_components(&img, m, &o, c, &kfd, &ifd);
        if (kfd >= 0)
                close(kfd);
        if (ifd >= 0)
                close(ifd);
        kos_manifest_free(m);
        kos_imagefs_close(&img);
        return ok;
}

TEST(check_components_hands_over_sealed_boot_files_before_the_components) {
        struct handover h = {0};
        struct kos_candidate c;

        CHECK(run_handover("KERNEL", "INITRD", "BASE", &h, &c));
        CHECK(h.calls == 1 && h.sealed);
        CHECK(strcmp(h.kernel, "KERNEL") == 0 && strcmp(h.initrd, "INITRD") == 0);
}

TEST(check_components_rejects_after_the_handover_when_a_component_is_wrong) {
        struct handover h = {0};
        struct kos_candidate c;

        /* The kernel and initrd are good, so they were handed over; the
         * manifest must still be rejected for its component. */
        CHECK(!run_handover("KERNEL", "INITRD", "BASf", &h, &c));
        CHECK(h.calls == 1);
        CHECK(c.reason == KOS_REASON_COMPONENT_HASH_MISMATCH);
}

TEST(check_components_hands_nothing_over_when_the_kernel_is_wrong) {
        struct handover h = {0};
        struct kos_candidate c;

        CHECK(!run_handover("KERNEl", "INITRD", "BASE", &h, &c));
        CHECK(h.calls == 0);
        CHECK(c.reason == KOS_REASON_COMPONENT_HASH_MISMATCH);
}

TEST(find_manifest_by_id_looks_in_active_then_everywhere) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        uint8_t id_x[KOS_SHA256_LEN], id_y[KOS_SHA256_LEN], id_none[KOS_SHA256_LEN], have[KOS_SHA256_LEN];
        char name[KOS_NAME_MAX + 1];

        CHECK(open_fresh_imagefs(&img) == 0);
        CHECK(kos_write_file_atomic_at(img.manifests_fd, "x.json", "xx", 2, 0644) == 0);
        CHECK(kos_write_file_atomic_at(img.manifests_fd, "y.json", "yy", 2, 0644) == 0);
        CHECK(kos_write_file_atomic_at(img.root_fd, KOS_ACTIVE_FILE, "y\n", 2, 0644) == 0);
        CHECK(kos_sha256("xx", 2, id_x) == 0 && kos_sha256("yy", 2, id_y) == 0 && kos_sha256("zz", 2, id_none) == 0);
        CHECK(kos_imagefs_manifest_id(&img, "x", have) == 0 && kos_digest_equal(have, id_x));
        CHECK(kos_imagefs_manifest_id(&img, "nosuch", have) == -ENOENT);
        CHECK(kos_imagefs_find_manifest_by_id(&img, id_y, name) == 0 && strcmp(name, "y") == 0);
        CHECK(kos_imagefs_find_manifest_by_id(&img, id_x, name) == 0 && strcmp(name, "x") == 0);
        CHECK(kos_imagefs_find_manifest_by_id(&img, id_none, name) == -ENOENT);
        kos_imagefs_close(&img);
}
