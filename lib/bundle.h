/* SPDX-License-Identifier: MIT */
/* Update bundles: one file holding a signed manifest and the components a
 * device may lack, as an uncompressed cpio "newc" stream:
 *   manifest.json, manifest.json.sig, components/<sha256>..., TRAILER!!!
 * Installing authenticates the manifest before anything else, streams each
 * component into the ImageFS while hashing it, and replaces `active` only at
 * the very end. See docs/format.md, "Update bundles". */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "hash.h"
#include "imagefs.h"
#include "keyring.h"

#define KOS_BUNDLE_DEFAULT_TRIES 3
#define KOS_BUNDLE_DEFAULT_KEEP 2

struct kos_bundle_options {
        unsigned tries;      /* boot tries of the new manifest (0: default) */
        unsigned keep;       /* manifests kept active, the new one included (0: default) */
        kos_progress_fn progress;
        void *userdata;
};

struct kos_bundle_result {
        char name[KOS_NAME_MAX + 1];
        uint8_t id[KOS_SHA256_LEN];
        unsigned added, skipped, removed_manifests;
        bool already_active; /* the same manifest was installed and first in active: nothing to do */
        uint64_t bytes_added;
        char error[320]; /* why, when the bundle was refused */
};

/* Installs the bundle read from fd. 0 on success; -EBADMSG when the bundle is
 * bad in any way (result->error says why; the ImageFS is as before, but for
 * unreferenced temporary files a crash may leave, which kos gc removes);
 * another negative errno on I/O errors. */
int kos_bundle_install(const struct kos_imagefs *img, const struct kos_keyring *ring, int fd,
                       const struct kos_bundle_options *options, struct kos_bundle_result *result);

/* Writes a bundle: the manifest, its signature, then the given component
 * files (each already known to be a blob of the manifest, in that order). */
int kos_bundle_write(int out_fd, const char *manifest, size_t manifest_len, const char *sig, size_t sig_len,
                     const int *component_fds, const uint8_t (*component_sha256)[KOS_SHA256_LEN],
                     const uint64_t *component_sizes, size_t n_components);

/* Removes components no installed manifest references, and .tmp-* leftovers.
 * Refuses (-EBADMSG) when an installed manifest cannot be read: then nothing
 * is known to be unreferenced. on_remove (may be NULL) hears each name. */
int kos_imagefs_gc(const struct kos_imagefs *img, bool dry_run, void (*on_remove)(const char *name, void *userdata),
                   void *userdata);
