/* SPDX-License-Identifier: MIT */
/* A signed manifest as an OCI artifact: `kos push` publishes it and its
 * components to any OCI registry, `kos pull` installs it from there,
 * fetching only the components the ImageFS lacks. The layout (one OCI image
 * manifest whose layers are the KOS manifest, its signature file and the
 * components) is in docs/format.md, "OCI artifacts". A pull installs through
 * kos_manifest_install(), the path every bundle takes. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "bundle-install.h"
#include "imagefs.h"
#include "keyring.h"
#include "oci-registry.h"

#define KOS_OCI_IMAGE_MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"
#define KOS_OCI_ARTIFACT_TYPE "application/vnd.kos.release.v1"
#define KOS_OCI_EMPTY_TYPE "application/vnd.oci.empty.v1+json"
#define KOS_OCI_MANIFEST_LAYER_TYPE "application/vnd.kos.manifest.v1+json"
#define KOS_OCI_SIGNATURE_LAYER_TYPE "application/vnd.kos.signature.v1"
#define KOS_OCI_COMPONENT_LAYER_TYPE "application/vnd.kos.component.v1"
#define KOS_OCI_ROLE_ANNOTATION "io.kos.role"
#define KOS_OCI_IMAGE_MANIFEST_MAX (256u << 10) /* 2 + 2 + 66 layers fit in a tenth of it */

struct kos_oci_push_result {
        unsigned blobs, uploaded; /* blobs of the artifact, and those the registry lacked */
        uint64_t bytes, bytes_uploaded;
        unsigned chunk_blobs, chunk_blobs_uploaded; /* chunks and chunk indexes, and those the registry lacked */
        uint64_t chunk_bytes, chunk_bytes_uploaded;
        unsigned deltas; /* components published with a delta from options->delta_from */
        uint64_t delta_bytes;
        char digest[KOS_OCI_DIGEST_LEN + 1]; /* of the OCI manifest pushed: what REPO@DIGEST names */
        struct kos_error error; /* why, when the manifest cannot be pushed (-EBADMSG) */
};

/* Components smaller than this are not chunked: their index and requests
 * would cost about what they do. */
#define KOS_OCI_CHUNKED_MIN_SIZE (256u << 10)

struct kos_oci_push_options {
        bool no_chunks; /* publish no chunk index (as kos did before chunks) */
        const char *delta_from; /* the installed release to publish deltas from, or NULL */
};

/* Publishes the installed manifest name of img (manifests/<name>.json and
 * .sig, and every blob it names from components/) as the artifact c's
 * reference names. Blobs the registry has already are not sent. With ring,
 * the manifest must authenticate against it first; without, it is pushed as
 * it is (the device verifies). 0; -EBADMSG (ret->error says why); another
 * negative errno (kos_oci_client_error() says why, for registry failures). */
_kos_must_check_ int kos_oci_push(struct kos_oci_client *c, const struct kos_imagefs *img, const char *name,
                                  const struct kos_keyring *ring, const struct kos_oci_push_options *options,
                                  struct kos_oci_push_result *ret);

enum kos_oci_layer_kind { KOS_OCI_LAYER_OTHER, KOS_OCI_LAYER_MANIFEST, KOS_OCI_LAYER_SIGNATURE, KOS_OCI_LAYER_COMPONENT };

struct kos_oci_layer {
        enum kos_oci_layer_kind kind; /* from its mediaType */
        char digest[KOS_OCI_DIGEST_LEN + 1];
        uint64_t size;
        char chunk_index[KOS_OCI_DIGEST_LEN + 1]; /* a component's chunk index ("" when none) */
        uint64_t chunk_index_size;
        char delta[KOS_OCI_DIGEST_LEN + 1]; /* a component's delta ("" when none), from the component delta_from */
        uint8_t delta_from[KOS_SHA256_LEN];
        uint64_t delta_size;
};

/* What a pull takes from the registry's (untrusted) OCI manifest: its
 * layers; which are the KOS manifest and the signature file. */
struct kos_oci_artifact {
        struct kos_oci_layer layers[KOS_MANIFEST_MAX_BLOBS + 2];
        size_t n_layers;
        int manifest, signature; /* indexes into layers */
};

/* Checks the shape only (schemaVersion 2, the OCI manifest media type when
 * given, the KOS artifactType, at most 69 layers each with a sha256 digest
 * and a size, exactly one manifest and one signature layer): what the layers
 * hold is checked against the signed KOS manifest. 0, or -EBADMSG with
 * ret_error saying why. A pure function (tests/fuzz/fuzz_oci_artifact.c). */
_kos_must_check_ int kos_oci_artifact_parse(const char *untrusted, size_t len, struct kos_oci_artifact *ret,
                                            struct kos_error *ret_error);

typedef void (*kos_oci_note_fn)(const char *line, void *userdata);

struct kos_oci_pull_options {
        struct kos_bundle_options install; /* tries, keep, running manifest, progress */
        kos_oci_note_fn note;              /* a line per component fetched or resumed, or NULL */
        void *note_userdata;
        /* Tests only: each transfer of a component is cut (as a broken
         * connection would cut it) after this many bytes; 0: never. */
        uint64_t test_cut_after;
};

/* How often a component whose connection broke is asked for again. */
#define KOS_OCI_FETCH_ATTEMPTS 3

/* Fetches the OCI manifest (one asked for by digest must hash to it), then
 * the KOS manifest and its signature file
 * (size-capped), and hands them to kos_manifest_install(), which verifies
 * the signature and the rollback floor before anything else is fetched,
 * removes what killed pulls of other releases left, and checks that the
 * ImageFS has room for the signed sizes; the components the ImageFS lacks
 * are then streamed in from their layers (a broken connection resumed with
 * a Range request, as is a download a killed pull of this release left);
 * a component whose layer names a delta from a component the ImageFS held
 * before the pull, or a chunk index, is rebuilt from those first
 * (oci-delta.h, oci-chunks.h), the rest of it from the layer.
 * Returns as kos_manifest_install(): 0; -EBADMSG when the artifact or the
 * manifest is refused (result->error says why); -ENOSPC when the ImageFS
 * lacks room (result->error says how much); another negative errno when the
 * registry could not be reached or a transfer failed
 * (kos_oci_client_error() says why). On failure nothing of the pull is
 * left: no partial download, no component it fetched. */
_kos_must_check_ int kos_oci_pull(struct kos_oci_client *c, const struct kos_imagefs *img, const struct kos_keyring *ring,
                                  const struct kos_oci_pull_options *options, struct kos_bundle_result *result);
