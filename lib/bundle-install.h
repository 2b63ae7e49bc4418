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
        unsigned keep;       /* manifests kept active, the new one included (0: default); the
                              * running and the newest good manifest are kept beyond it */
        /* The id (sha256 of the bytes) of the manifest the device is running
         * (Node Manager: "manifest"."id" of /run/kos/boot.json), or NULL when
         * unknown (on a host). That manifest is never retired. */
        const uint8_t *running_id;
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
        /* Set once `active` names the new manifest (the commit point): the
         * install stands whatever happens after. */
        bool committed;
        /* Non-empty when the clean-up after the commit point (retiring old
         * manifests, gc) failed: the bundle is installed all the same and
         * kos_bundle_install() returns 0; only disk space is left over. */
        char warning[320];
};

/* Installs the bundle read from fd. 0 on success (result->warning says if
 * the clean-up after the commit point failed); -EBADMSG when the bundle is
 * bad in any way (result->error says why; the ImageFS is as before, but for
 * unreferenced temporary files a crash may leave, which kos gc removes);
 * another negative errno on I/O errors before the commit point (the new
 * manifest may then be installed, but it is not in `active`). */
_kos_must_check_ int kos_bundle_install(const struct kos_imagefs *img, const struct kos_keyring *ring, int fd,
                       const struct kos_bundle_options *options, struct kos_bundle_result *result);
