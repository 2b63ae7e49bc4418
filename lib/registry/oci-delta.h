/* SPDX-License-Identifier: MIT */
/* Binary deltas between two versions of a component (docs/format.md,
 * "Component deltas"): `kos push --delta-from OLD` publishes, for each
 * component that changed since the release OLD, a zstd frame of the new
 * component compressed with the old one as its dictionary (what `zstd
 * --patch-from=OLD` makes), named by annotations of the new component's
 * layer. A device that holds the old component fetches the delta instead
 * of chunks; the result must hash to the signed sha256 as ever. */
#pragma once

#include <stdint.h>

#include "bundle-install.h"
#include "oci-registry.h"

#define KOS_OCI_DELTA_FROM_ANNOTATION "io.kos.delta.from" /* sha256:<the old component> */
#define KOS_OCI_DELTA_ANNOTATION "io.kos.delta"           /* the delta blob's digest */
#define KOS_OCI_DELTA_SIZE_ANNOTATION "io.kos.delta.size" /* and its size, decimal */
#define KOS_OCI_DELTA_TYPE "application/vnd.kos.delta.v1+zstd"
#define KOS_OCI_DELTA_TAG_PREFIX "kos-delta-" /* + the new component's sha256 in hex */
#define KOS_OCI_DELTA_ZSTD_LEVEL 19
#define KOS_OCI_DELTA_WINDOW_LOG_MAX 31 /* 2 GiB: the largest old component a delta may refer to */

struct kos_oci_delta_pushed {
        char from[KOS_OCI_DIGEST_LEN + 1];
        char digest[KOS_OCI_DIGEST_LEN + 1];
        uint64_t size;
        bool uploaded;
};

/* Makes the delta from the old component (old_fd, old_size bytes, old_sha256)
 * to the new one and uploads it unless the registry has it, with a manifest
 * kos-delta-<new hex> naming it (kept from garbage collection). 0; -E2BIG
 * when the delta would not be smaller than the new component (then nothing
 * is published); another negative errno. */
_kos_must_check_ int kos_oci_push_delta(struct kos_oci_client *c, int old_fd, uint64_t old_size,
                                        const uint8_t old_sha256[static KOS_SHA256_LEN], int new_fd, uint64_t new_size,
                                        const uint8_t new_sha256[static KOS_SHA256_LEN], struct kos_oci_delta_pushed *ret);

struct kos_oci_delta_fetch {
        struct kos_oci_client *client;
        int old_fd; /* the old component, open */
        uint64_t old_size;
        const struct kos_blob *blob;
        const char *digest; /* of the delta */
        uint64_t size;
        struct kos_component_sink *sink;
        /* out */
        uint64_t written;
        uint64_t fetched_bytes;
        struct kos_error why; /* when it returns 0: why the delta is of no use (code -EBADMSG) */
};

/* Writes the new component into f->sink (from its start) from the old one
 * and the delta. 1 when all of it was written; 0 when the delta is of no use
 * (over the component's size, not hashing to its digest, not a zstd frame
 * that decompresses with the old component to the signed size; f->why says
 * which): the caller fetches the rest from f->written on another way; a
 * negative errno when the sink refused or the registry failed. */
_kos_must_check_ int kos_oci_fetch_delta(struct kos_oci_delta_fetch *f);
