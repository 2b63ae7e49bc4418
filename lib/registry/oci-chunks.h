/* SPDX-License-Identifier: MIT */
/* Chunked components over a registry (docs/format.md, "Chunked
 * components"): `kos push` publishes each component's chunks as zstd blobs
 * and their index as one more blob, and `kos pull` rebuilds a component
 * from the chunks of the components already on the ImageFS (the seeds) plus
 * the chunks it fetches. Only kos_oci_push() and kos_oci_pull() (oci.c) call
 * these. */
#pragma once

#include <stdint.h>

#include "bundle-install.h"
#include "chunks.h"
#include "oci-registry.h"

#define KOS_OCI_CHUNK_INDEX_ANNOTATION "io.kos.chunk-index"           /* on a component layer: the index's digest */
#define KOS_OCI_CHUNK_INDEX_SIZE_ANNOTATION "io.kos.chunk-index.size" /* and its size, decimal */
#define KOS_OCI_CHUNKS_ARTIFACT_TYPE "application/vnd.kos.chunks.v1"
#define KOS_OCI_CHUNK_INDEX_TYPE "application/vnd.kos.chunk-index.v1"
#define KOS_OCI_CHUNK_TYPE "application/vnd.kos.chunk.v1+zstd"
#define KOS_OCI_CHUNKS_TAG_PREFIX "kos-chunks-" /* + the component's sha256 in hex */
#define KOS_OCI_CHUNK_ZSTD_LEVEL 9
/* A component is rebuilt from chunks when the seeds hold at least this part
 * of it (1/16) and the chunks to fetch are fewer bytes than the layer. */
#define KOS_OCI_CHUNKS_SEEDED_MIN_PART 16

struct kos_oci_chunks_pushed {
        char index_digest[KOS_OCI_DIGEST_LEN + 1];
        uint64_t index_size;
        unsigned chunks, uploaded;
        uint64_t bytes, bytes_uploaded; /* of the chunk blobs and the index */
};

/* Cuts the component (size bytes behind fd, sha256) into chunks and
 * uploads those the registry lacks, then the index, then the manifest
 * kos-chunks-<hex> that names them all (so a registry's garbage collector
 * keeps them). 0 or a negative errno (kos_oci_client_error() says why for
 * registry failures). */
_kos_must_check_ int kos_oci_push_chunks(struct kos_oci_client *c, int fd, const uint8_t sha256[static KOS_SHA256_LEN],
                                         uint64_t size, struct kos_oci_chunks_pushed *ret);

/* The seeds of a pull: the component files the ImageFS held before it
 * fetched anything (at most KOS_OCI_SEEDS_MAX of them). */
#define KOS_OCI_SEEDS_MAX 64
struct kos_oci_seeds {
        char names[KOS_OCI_SEEDS_MAX][KOS_SHA256_HEX_LEN + 1];
        size_t n;
};

_kos_must_check_ int kos_oci_list_seeds(int components_fd, struct kos_oci_seeds *ret);

typedef void (*kos_oci_chunk_note_fn)(void *userdata, const char *format, ...) __attribute__((format(printf, 2, 3)));

struct kos_oci_chunked_fetch {
        struct kos_oci_client *client;
        int components_fd; /* the ImageFS's components/ */
        const struct kos_oci_seeds *seeds;
        const struct kos_blob *blob;
        const char *label;
        const char *index_digest;
        uint64_t index_size;
        uint64_t offset; /* bytes already in the sink (a resumed pull) */
        struct kos_component_sink *sink;
        kos_oci_chunk_note_fn note;
        void *userdata;
        /* out */
        uint64_t written;       /* bytes written to the sink from offset on */
        uint64_t fetched_bytes; /* response bytes: the index and the chunk blobs */
        unsigned fetched_chunks;
        uint64_t seeded_bytes; /* bytes taken from seeds */
};

/* Writes the component from f->offset on into f->sink from seeds and
 * fetched chunks. 1 when every byte was written; 0 when the chunks are of no
 * use or stopped being (no seed, an index that does not parse, the seeds
 * hold less than 1/16 of the component or fetching the chunks would cost as
 * much as the layer, a chunk that is missing or does not hash to its index
 * entry): the caller fetches the rest of the layer
 * from f->offset + f->written; a negative errno when the sink refused or the
 * registry failed. The sink hashes what is written: the index is trusted
 * for nothing but where to look. */
_kos_must_check_ int kos_oci_fetch_chunked(struct kos_oci_chunked_fetch *f);
