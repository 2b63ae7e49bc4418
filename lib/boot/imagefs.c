/* SPDX-License-Identifier: MIT */
#include "imagefs.h"
#include "layout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "manifest.h"

static int mkdir_at(int dirfd, const char *name) {
        if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int open_dir_at(int dirfd, const char *name) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

int kos_imagefs_init(const char *path) {
        int r;

        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_close_ int root = open_dir_at(AT_FDCWD, path);
        if (root < 0)
                return root;
        if ((r = mkdir_at(root, "components")) < 0 || (r = mkdir_at(root, "manifests")) < 0 ||
            (r = mkdir_at(root, KOS_BOOT_STATE_DIR)) < 0)
                return r;
        if (faccessat(root, KOS_ACTIVE_FILE, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                return kos_write_file_atomic_at(root, KOS_ACTIVE_FILE, "", 0, 0644);
        return 0;
}

int kos_imagefs_open(const char *path, struct kos_imagefs *ret) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;

        img.root_fd = open_dir_at(AT_FDCWD, path);
        if (img.root_fd < 0)
                return img.root_fd;
        img.components_fd = open_dir_at(img.root_fd, "components");
        img.manifests_fd = open_dir_at(img.root_fd, "manifests");
        if (img.components_fd < 0 || img.manifests_fd < 0) {
                int r = img.components_fd < 0 ? img.components_fd : img.manifests_fd;
                kos_imagefs_close(&img);
                return r == -ENOENT ? -ENOTDIR : r; /* "not an ImageFS" rather than "no such file" */
        }
        *ret = img;
        return 0;
}

void kos_imagefs_close(struct kos_imagefs *img) {
        kos_closep(&img->root_fd);
        kos_closep(&img->components_fd);
        kos_closep(&img->manifests_fd);
        *img = (struct kos_imagefs)KOS_IMAGEFS_NULL;
}

void kos_manifest_file_names(const char *name, char json[static KOS_NAME_MAX + 8], char sig[static KOS_NAME_MAX + 12]) {
        snprintf(json, KOS_NAME_MAX + 8, "%s.json", name);
        snprintf(sig, KOS_NAME_MAX + 12, "%s.json.sig", name);
}

int kos_imagefs_add_component(const struct kos_imagefs *img, int src_fd, uint8_t ret_sha256[static KOS_SHA256_LEN],
                              kos_progress_fn progress, void *userdata) {
        char tmp[64], hex[KOS_SHA256_HEX_LEN + 1];
        struct stat st;
        int r;

        if (fstat(src_fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        snprintf(tmp, sizeof tmp, ".tmp-add-%d", (int)getpid());
        _cleanup_close_ int out = kos_create_file_at(img->components_fd, tmp, 0644);
        if (out < 0)
                return out;

        struct kos_hash_job job = {.fd = src_fd, .size = (uint64_t)st.st_size, .copy_fd = out, .compute_only = true};
        r = kos_hash_jobs(&job, 1, progress, userdata);
        if (r >= 0 && job.status != KOS_HASH_MATCH)
                r = job.status == KOS_HASH_IO_ERROR ? job.error : -EAGAIN; /* the source changed while copied */
        if (r >= 0 && fsync(out) < 0)
                r = -errno;
        if (r >= 0) {
                kos_hex_encode(job.digest, KOS_SHA256_LEN, hex);
                /* Content-addressed: if the name exists it already holds these bytes. */
                if (renameat(img->components_fd, tmp, img->components_fd, hex) < 0)
                        r = -errno;
        }
        if (r < 0) {
                (void)unlinkat(img->components_fd, tmp, 0);
                return r;
        }
        if (fsync(img->components_fd) < 0)
                return -errno;
        memcpy(ret_sha256, job.digest, KOS_SHA256_LEN);
        return 0;
}

static int same_file_content(int dirfd, const char *name, const char *data, size_t len, size_t cap) {
        _cleanup_free_ char *old = NULL;
        size_t old_len;
        int r = kos_read_file_at(dirfd, name, cap, &old, &old_len);

        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        return old_len == len && memcmp(old, data, len) == 0;
}

int kos_imagefs_install_manifest(const struct kos_imagefs *img, const char *name, const char *json, size_t json_len,
                                 const char *sig, size_t sig_len) {
        char json_name[KOS_NAME_MAX + 8], sig_name[KOS_NAME_MAX + 12];
        int r;

        if (!kos_name_is_valid(name))
                return -EINVAL;
        kos_manifest_file_names(name, json_name, sig_name);
        r = same_file_content(img->manifests_fd, json_name, json, json_len, KOS_MANIFEST_MAX);
        if (r == -EFBIG)
                r = 0; /* an oversized file there is certainly not these bytes */
        if (r < 0)
                return r;
        if (r == 0 && faccessat(img->manifests_fd, json_name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return -EEXIST;
        /* Signature first: until the .json exists the name is not installed,
         * and a re-install of the same bytes may add signatures safely. */
        r = kos_write_file_atomic_at(img->manifests_fd, sig_name, sig, sig_len, 0644);
        if (r < 0)
                return r;
        return kos_write_file_atomic_at(img->manifests_fd, json_name, json, json_len, 0644);
}

int kos_imagefs_for_each_manifest(const struct kos_imagefs *img,
                                  int (*fn)(const struct kos_imagefs *img, const char *name, void *userdata),
                                  void *userdata) {
        DIR *d = fdopendir(fcntl(img->manifests_fd, F_DUPFD_CLOEXEC, 3));
        int r = 0;

        if (!d)
                return -errno;
        rewinddir(d);
        for (struct dirent *de; r == 0 && (de = readdir(d));) {
                size_t n = strlen(de->d_name);
                char name[KOS_NAME_MAX + 8];
                if (n <= 5 || n - 5 > KOS_NAME_MAX || strcmp(de->d_name + n - 5, ".json") != 0)
                        continue;
                memcpy(name, de->d_name, n - 5);
                name[n - 5] = '\0';
                if (kos_name_is_valid(name))
                        r = fn(img, name, userdata);
        }
        closedir(d);
        return r;
}

int kos_imagefs_manifest_id(const struct kos_imagefs *img, const char *name, uint8_t ret_id[static KOS_SHA256_LEN]) {
        char json[KOS_NAME_MAX + 8], sig[KOS_NAME_MAX + 12];
        _cleanup_free_ char *untrusted = NULL;
        size_t len;

        if (!kos_name_is_valid(name))
                return -EINVAL;
        kos_manifest_file_names(name, json, sig);
        int r = kos_read_file_at(img->manifests_fd, json, KOS_MANIFEST_MAX, &untrusted, &len);
        return r < 0 ? r : kos_sha256(untrusted, len, ret_id);
}
