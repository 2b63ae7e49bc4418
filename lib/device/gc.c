/* SPDX-License-Identifier: MIT */
#include "gc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "select.h"
#include "util.h"

struct references {
        size_t n, allocated;
        uint8_t (*digests)[KOS_SHA256_LEN];
};

static int add_reference(struct references *refs, const uint8_t digest[static KOS_SHA256_LEN]) {
        if (refs->n == refs->allocated) {
                size_t n = refs->allocated ? refs->allocated * 2 : 64;
                void *p = realloc(refs->digests, n * KOS_SHA256_LEN);
                if (!p)
                        return -ENOMEM;
                refs->digests = p;
                refs->allocated = n;
        }
        memcpy(refs->digests[refs->n++], digest, KOS_SHA256_LEN);
        return 0;
}

struct gc_walk {
        const struct kos_gc_options *options;
        uint32_t floor;
        struct references refs;
};

static void report_ignored(const struct gc_walk *walk, const char *name, const struct kos_candidate *c) {
        char why[400];

        if (!walk->options->on_ignored)
                return;
        snprintf(why, sizeof why, "%s: %s", kos_reason_to_string(c->reason), c->detail);
        walk->options->on_ignored(name, why, walk->options->userdata);
}

/* Every blob an authenticated installed manifest at or above the rollback
 * floor names. What cannot be authenticated is ignored: it protects nothing, and must not block gc. An
 * I/O error stops gc: nothing is removed on a partial picture. */
static int add_manifest_references(const struct kos_imagefs *img, const char *name, void *userdata) {
        struct gc_walk *walk = userdata;
        const struct kos_blob *blobs[KOS_MANIFEST_MAX_BLOBS];
        const char *labels[KOS_MANIFEST_MAX_BLOBS];
        struct kos_candidate c = {0};
        _cleanup_manifest_ struct kos_manifest *m = NULL;
        int r = 0;

        if (!kos_load_manifest(img, walk->options->ring, name, &c, &m)) {
                if (c.reason == KOS_REASON_IO_ERROR)
                        return -EIO;
                report_ignored(walk, name, &c);
                return 0;
        }
        /* Below the rollback floor it can never boot here again: its
         * components go, like those of a manifest that does not authenticate. */
        if (!kos_check_rollback(m, walk->floor, &c)) {
                report_ignored(walk, name, &c);
                return 0;
        }
        for (size_t i = 0, nb = kos_manifest_blobs(m, blobs, labels, KOS_MANIFEST_MAX_BLOBS); i < nb && r >= 0; i++)
                r = add_reference(&walk->refs, blobs[i]->sha256);
        return r;
}

static bool is_kept(const struct kos_gc_options *options, const uint8_t digest[static KOS_SHA256_LEN]) {
        for (size_t i = 0; i < options->n_keep; i++)
                if (memcmp(options->keep[i]->sha256, digest, KOS_SHA256_LEN) == 0)
                        return true;
        return false;
}

/* The .tmp- files a cut left in manifests/ (kos_write_file_atomic_at()
 * of a manifest or its signature; only an install writes there, and one
 * runs at a time). Best effort: what cannot be removed (a planted
 * directory) stays, and is never read as a manifest. */
static void remove_manifest_leftovers(const struct kos_imagefs *img, const struct kos_gc_options *options) {
        DIR *d = fdopendir(fcntl(img->manifests_fd, F_DUPFD_CLOEXEC, 3));
        unsigned removed = 0;

        if (!d)
                return;
        rewinddir(d);
        for (struct dirent *de; (de = readdir(d));) {
                if (strncmp(de->d_name, ".tmp-", 5) != 0)
                        continue;
                if (options->on_remove)
                        options->on_remove(de->d_name, options->userdata);
                if (!options->dry_run && unlinkat(img->manifests_fd, de->d_name, 0) == 0)
                        removed++;
        }
        closedir(d);
        if (removed > 0)
                (void)fsync(img->manifests_fd);
}

int kos_imagefs_gc(const struct kos_imagefs *img, const struct kos_gc_options *options) {
        struct gc_walk walk = {.options = options};
        uint8_t digest[KOS_SHA256_LEN];
        unsigned removed = 0;

        struct kos_rollback_floor floor;
        if (!options->ring)
                return -EINVAL;
        int r = kos_rollback_floor_read(img, options->ring, &floor);
        if (r < 0)
                return r;
        walk.floor = floor.value;
        r = kos_imagefs_for_each_manifest(img, add_manifest_references, &walk);
        DIR *d = r >= 0 ? fdopendir(fcntl(img->components_fd, F_DUPFD_CLOEXEC, 3)) : NULL;
        if (r >= 0 && !d)
                r = -errno;
        if (d)
                rewinddir(d);
        for (struct dirent *de; d && r >= 0 && (de = readdir(d));) {
                const char *n = de->d_name;
                bool referenced = false, ours = strncmp(n, ".tmp-", 5) == 0;
                if (kos_hex_decode(n, strlen(n), digest, KOS_SHA256_LEN) == 0) {
                        ours = true;
                        for (size_t i = 0; i < walk.refs.n && !referenced; i++)
                                referenced = memcmp(walk.refs.digests[i], digest, KOS_SHA256_LEN) == 0;
                        referenced = referenced || is_kept(options, digest);
                } else if (strncmp(n, ".tmp-pull-", 10) == 0 && kos_hex_decode(n + 10, strlen(n + 10), digest, KOS_SHA256_LEN) == 0)
                        referenced = is_kept(options, digest);
                if (!ours || referenced)
                        continue;
                if (options->on_remove)
                        options->on_remove(n, options->userdata);
                if (!options->dry_run && unlinkat(img->components_fd, n, 0) < 0)
                        r = -errno;
                kos_fault_point();
                removed++;
        }
        if (d)
                closedir(d);
        if (r >= 0 && !options->dry_run && removed > 0 && fsync(img->components_fd) < 0)
                r = -errno;
        if (r >= 0)
                remove_manifest_leftovers(img, options);
        free(walk.refs.digests);
        return r;
}
