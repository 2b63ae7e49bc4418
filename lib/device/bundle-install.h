/* SPDX-License-Identifier: MIT */
/* Update bundles: one file holding a signed manifest and the components a
 * device may lack, as an uncompressed cpio "newc" stream:
 *   manifest.json, manifest.json.sig, components/<sha256>..., TRAILER!!!
 * Installing authenticates the manifest before anything else, streams each
 * component into the ImageFS while hashing it, and replaces `active` only at
 * the very end. See docs/format.md, "Update bundles".
 *
 * kos_manifest_install() is the same install for a manifest whose bytes
 * arrived some other way (kos pull, from an OCI registry): the same checks in
 * the same order, the same component writes, the same commit point; only
 * where the components come from differs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "hash.h"
#include "imagefs.h"
#include "keyring.h"
#include "manifest.h"

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
        unsigned components;       /* distinct blobs the manifest names (kernel, initrd, components) */
        uint64_t components_bytes; /* and their size in all */
        uint64_t resumed_bytes;    /* kos_manifest_install(): bytes an earlier, interrupted run had fetched */
        uint64_t chunk_seeded_bytes;  /* kos pull: bytes of components rebuilt from the device's own (chunks) */
        uint64_t chunk_fetched_bytes; /* and the bytes of chunk indexes and chunks fetched for them */
        struct kos_error error; /* why, when the bundle was refused */
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

/* A component being written into the ImageFS, hashed as it arrives. */
struct kos_component_sink;

/* Appends len bytes of the component. 0, or -EBADMSG when they go past the
 * manifest's size (the install is refused), or an I/O errno. */
_kos_must_check_ int kos_component_sink_write(struct kos_component_sink *sink, const void *data, size_t len);
/* For the source: refuses the install with a reason (returns -EBADMSG). */
int kos_component_sink_refuse(struct kos_component_sink *sink, const char *format, ...) __attribute__((format(printf, 2, 3)));

struct kos_component_source {
        /* Writes the bytes of blob from offset on (a resumed download: the
         * bytes before it are in the sink already) with
         * kos_component_sink_write(). 0 when all were written; -EBADMSG when
         * the source refuses (kos_component_sink_refuse()); another negative
         * errno when the bytes could not be had (network). Called only for
         * blobs the ImageFS lacks, once each, after the manifest has
         * authenticated and passed the rollback floor. */
        int (*fetch)(void *userdata, const struct kos_blob *blob, const char *label, uint64_t offset,
                     struct kos_component_sink *sink);
        void *userdata;
        /* A download of one of the manifest's blobs that a killed run left
         * (components/.tmp-pull-<sha256>) is resumed rather than started
         * over. A run that fails removes its own, whatever the reason. */
        bool resumable;
};

/* Installs the manifest untrusted_json signed by untrusted_sig exactly as
 * kos_bundle_install() installs a bundle's (docs/format.md, "Update
 * bundles"), fetching the components the ImageFS lacks from source. Once the
 * manifest has authenticated and passed the floor, and before the first
 * fetch: leftovers of other releases' killed pulls are removed (gc, this
 * manifest's blobs kept) and the free space is checked against the signed
 * sizes still to come (-ENOSPC, result->error saying how much). Returns as
 * kos_bundle_install(); an errno of fetch is returned as it is. A failure
 * before the commit point leaves nothing of this run behind. */
_kos_must_check_ int kos_manifest_install(const struct kos_imagefs *img, const struct kos_keyring *ring,
                                          const char *untrusted_json, size_t json_len, const char *untrusted_sig, size_t sig_len,
                                          const struct kos_component_source *source, const struct kos_bundle_options *options,
                                          struct kos_bundle_result *result);
