/* SPDX-License-Identifier: MIT */
#include "oci-chunks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define digest_string kos_oci_digest_string

/* --- Push ----------------------------------------------------------------- */

static int upload_if_missing(struct kos_oci_client *c, const uint8_t sha256[static KOS_SHA256_LEN], const void *data, size_t len,
                             struct kos_oci_chunks_pushed *ret) {
        char digest[KOS_OCI_DIGEST_LEN + 1];
        int r;

        digest_string(sha256, digest);
        ret->bytes += len;
        if ((r = kos_oci_blob_exists(c, digest)) != 0)
                return r < 0 ? r : 0;
        if ((r = kos_oci_blob_upload(c, digest, data, -1, len)) < 0)
                return r;
        ret->uploaded++;
        ret->bytes_uploaded += len;
        return 0;
}

/* One chunk: compressed, hashed both ways, uploaded unless there. */
static int push_chunk(struct kos_oci_client *c, ZSTD_CCtx *cctx, const uint8_t *data, size_t len, uint8_t *blob,
                      struct kos_chunk_entry *e, struct kos_oci_chunks_pushed *ret) {
        size_t blob_len = ZSTD_compressCCtx(cctx, blob, KOS_CHUNK_BLOB_MAX, data, len, KOS_OCI_CHUNK_ZSTD_LEVEL);
        int r;

        if (ZSTD_isError(blob_len))
                return -EIO;
        *e = (struct kos_chunk_entry){.length = (uint32_t)len, .blob_length = (uint32_t)blob_len};
        if ((r = kos_sha256(data, len, e->sha256)) < 0 || (r = kos_sha256(blob, blob_len, e->blob_sha256)) < 0)
                return r;
        ret->chunks++;
        return upload_if_missing(c, e->blob_sha256, blob, blob_len, ret);
}

static bool blob_listed_before(const struct kos_chunk_index *index, size_t i) {
        for (size_t j = 0; j < i; j++)
                if (memcmp(index->entries[j].blob_sha256, index->entries[i].blob_sha256, KOS_SHA256_LEN) == 0)
                        return true;
        return false;
}

/* The manifest kos-chunks-<hex>: the index and each distinct chunk blob as
 * layers, so that a registry's garbage collection keeps them. No client
 * reads it. */
static char *chunks_manifest(const struct kos_chunk_index *index, const char *index_digest, size_t index_len) {
        json_t *layers = json_array(), *root;
        char digest[KOS_OCI_DIGEST_LEN + 1], *text = NULL;

        json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType", KOS_OCI_CHUNK_INDEX_TYPE, "digest", index_digest,
                                                "size", (json_int_t)index_len));
        for (size_t i = 0; i < index->count; i++) {
                if (index->count < 4096 ? blob_listed_before(index, i) : false)
                        continue;
                digest_string(index->entries[i].blob_sha256, digest);
                json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType", KOS_OCI_CHUNK_TYPE, "digest", digest, "size",
                                                        (json_int_t)index->entries[i].blob_length));
        }
        root = json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:i}, s:o}", "schemaVersion", 2, "mediaType",
                         "application/vnd.oci.image.manifest.v1+json", "artifactType", KOS_OCI_CHUNKS_ARTIFACT_TYPE, "config",
                         "mediaType", "application/vnd.oci.empty.v1+json", "digest",
                         "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size", 2, "layers", layers);
        if (root)
                text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return text;
}

static int push_index(struct kos_oci_client *c, const struct kos_chunk_index *index, struct kos_oci_chunks_pushed *ret) {
        _cleanup_free_ uint8_t *bytes = NULL;
        _cleanup_free_ char *text = NULL;
        uint8_t sha[KOS_SHA256_LEN];
        char tag[sizeof KOS_OCI_CHUNKS_TAG_PREFIX + KOS_SHA256_HEX_LEN];
        size_t len;
        int r;

        if ((r = kos_chunk_index_encode(index, &bytes, &len)) < 0 || (r = kos_sha256(bytes, len, sha)) < 0 ||
            (r = upload_if_missing(c, sha, bytes, len, ret)) < 0)
                return r;
        digest_string(sha, ret->index_digest);
        ret->index_size = len;
        if (!(text = chunks_manifest(index, ret->index_digest, len)))
                return -ENOMEM;
        memcpy(tag, KOS_OCI_CHUNKS_TAG_PREFIX, sizeof KOS_OCI_CHUNKS_TAG_PREFIX - 1);
        kos_hex_encode(index->sha256, KOS_SHA256_LEN, tag + sizeof KOS_OCI_CHUNKS_TAG_PREFIX - 1);
        return kos_oci_manifest_put_at(c, tag, "application/vnd.oci.image.manifest.v1+json", text, strlen(text));
}

int kos_oci_push_chunks(struct kos_oci_client *c, int fd, const uint8_t sha256[static KOS_SHA256_LEN], uint64_t size,
                        struct kos_oci_chunks_pushed *ret) {
        _cleanup_free_ uint8_t *buffer = malloc(KOS_CHUNKER_BUFFER), *blob = malloc(KOS_CHUNK_BLOB_MAX);
        struct kos_chunk_index index = {.size = size};
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        struct kos_chunker chunker;
        const uint8_t *data;
        size_t len, cap = 0;
        int r;

        *ret = (struct kos_oci_chunks_pushed){0};
        memcpy(index.sha256, sha256, KOS_SHA256_LEN);
        if (!buffer || !blob || !cctx) {
                r = -ENOMEM;
                goto out;
        }
        if (lseek(fd, 0, SEEK_SET) < 0) {
                r = -errno;
                goto out;
        }
        kos_chunker_init(&chunker, fd, buffer);
        while ((r = kos_chunker_next(&chunker, &data, &len)) > 0) {
                if (index.count == cap) {
                        cap = cap ? 2 * cap : 1024;
                        struct kos_chunk_entry *more = realloc(index.entries, cap * sizeof *more);
                        if (!more) {
                                r = -ENOMEM;
                                goto out;
                        }
                        index.entries = more;
                }
                if ((r = push_chunk(c, cctx, data, len, blob, &index.entries[index.count++], ret)) < 0)
                        goto out;
        }
        if (r == 0)
                r = index.count > 0 ? push_index(c, &index, ret) : -EINVAL;
out:
        ZSTD_freeCCtx(cctx);
        kos_chunk_index_done(&index);
        return r;
}

/* --- Pull ----------------------------------------------------------------- */

/* Where the bytes of an index entry are on the device: seed number and offset. */
struct location {
        int seed; /* -1: fetch */
        uint64_t offset;
};

struct rebuild {
        struct kos_oci_chunked_fetch *f;
        struct kos_chunk_index index;
        struct location *where;
        size_t *by_hash; /* entry numbers sorted by chunk sha256 */
        int seeds[KOS_OCI_SEEDS_MAX];
        size_t n_seeds;
        uint8_t *chunk, *blob_buffer; /* KOS_CHUNK_MAX bytes each */
        ZSTD_DCtx *dctx;
};

static const struct kos_chunk_index *sort_index;
static int compare_by_hash(const void *a, const void *b) {
        return memcmp(sort_index->entries[*(const size_t *)a].sha256, sort_index->entries[*(const size_t *)b].sha256, KOS_SHA256_LEN);
}

/* The first entry number of by_hash whose chunk hashes to sha256, or count. */
static size_t find_hash(const struct rebuild *rb, const uint8_t *sha256) {
        size_t lo = 0, hi = rb->index.count;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (memcmp(rb->index.entries[rb->by_hash[mid]].sha256, sha256, KOS_SHA256_LEN) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static bool is_component_name(const char *name) {
        uint8_t raw[KOS_SHA256_LEN];
        return strlen(name) == KOS_SHA256_HEX_LEN && kos_hex_decode(name, KOS_SHA256_HEX_LEN, raw, sizeof raw) == 0;
}

/* Cuts one seed and notes where each chunk the index wants is in it. */
static int index_seed(struct rebuild *rb, int fd, int seed, uint8_t *buffer) {
        struct kos_chunker chunker;
        const uint8_t *data;
        uint64_t offset = 0;
        size_t len;
        int r;

        kos_chunker_init(&chunker, fd, buffer);
        while ((r = kos_chunker_next(&chunker, &data, &len)) > 0) {
                uint8_t sha[KOS_SHA256_LEN];
                if ((r = kos_sha256(data, len, sha)) < 0)
                        return r;
                for (size_t k = find_hash(rb, sha); k < rb->index.count; k++) {
                        size_t e = rb->by_hash[k];
                        if (memcmp(rb->index.entries[e].sha256, sha, KOS_SHA256_LEN) != 0)
                                break;
                        if (rb->where[e].seed < 0 && rb->index.entries[e].length == len)
                                rb->where[e] = (struct location){.seed = seed, .offset = offset};
                }
                offset += len;
        }
        return r;
}

/* Opens each seed and indexes it. */
static int index_seeds(struct rebuild *rb) {
        _cleanup_free_ uint8_t *buffer = malloc(KOS_CHUNKER_BUFFER);
        int r = 0;

        if (!buffer)
                return -ENOMEM;
        for (size_t i = 0; r >= 0 && i < rb->f->seeds->n; i++) {
                int fd = kos_open_regular_at(rb->f->components_fd, rb->f->seeds->names[i], O_NOFOLLOW, NULL);
                if (fd < 0)
                        continue; /* gone, or not a regular file: not a seed */
                rb->seeds[rb->n_seeds] = fd;
                r = index_seed(rb, fd, (int)rb->n_seeds, buffer);
                rb->n_seeds++;
        }
        return r;
}

int kos_oci_list_seeds(int components_fd, struct kos_oci_seeds *ret) {
        int dfd = dup(components_fd);
        DIR *d;

        ret->n = 0;
        if (dfd < 0 || !(d = fdopendir(dfd))) {
                int r = -errno;
                kos_closep(&dfd);
                return r;
        }
        rewinddir(d);
        for (struct dirent *de; ret->n < KOS_OCI_SEEDS_MAX && (de = readdir(d));)
                if (is_component_name(de->d_name))
                        memcpy(ret->names[ret->n++], de->d_name, KOS_SHA256_HEX_LEN + 1);
        closedir(d);
        return 0;
}

static int fetch_index(struct rebuild *rb, struct kos_error *ret_error) {
        struct kos_oci_chunked_fetch *f = rb->f;
        _cleanup_free_ char *untrusted = NULL;
        size_t len;
        int r;

        if (f->index_size > kos_chunk_index_max_bytes(f->blob->size))
                return kos_error_set(ret_error, -EBADMSG, "the index's %llu bytes are over its cap of %llu",
                                   (unsigned long long)f->index_size, (unsigned long long)kos_chunk_index_max_bytes(f->blob->size));
        r = kos_oci_blob_get_small(f->client, f->index_digest, (size_t)f->index_size, &untrusted, &len);
        if (r == -ENOENT || r == -EFBIG)
                return kos_error_set(ret_error, -EBADMSG, "%s", kos_oci_client_error(f->client));
        if (r < 0)
                return r;
        f->fetched_bytes += len;
        uint8_t want[KOS_SHA256_LEN], got[KOS_SHA256_LEN];
        if (kos_hex_decode(f->index_digest + 7, KOS_SHA256_HEX_LEN, want, sizeof want) < 0 || kos_sha256(untrusted, len, got) < 0 ||
            !kos_digest_equal(want, got))
                return kos_error_set(ret_error, -EBADMSG, "it does not hash to %s", f->index_digest);
        return kos_chunk_index_parse((const uint8_t *)untrusted, len, f->blob->sha256, f->blob->size, &rb->index, ret_error);
}

/* Where every chunk can be had: the seeds first. */
static int locate_chunks(struct rebuild *rb) {
        size_t n = rb->index.count;

        rb->where = malloc(n * sizeof *rb->where);
        rb->by_hash = malloc(n * sizeof *rb->by_hash);
        if (!rb->where || !rb->by_hash)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                rb->where[i] = (struct location){.seed = -1};
                rb->by_hash[i] = i;
        }
        sort_index = &rb->index;
        qsort(rb->by_hash, n, sizeof *rb->by_hash, compare_by_hash);
        sort_index = NULL;
        return index_seeds(rb);
}

/* Bytes of the blobs to fetch from offset on, and bytes the seeds hold. */
static uint64_t bytes_to_fetch(const struct rebuild *rb, uint64_t offset, uint64_t *ret_seeded) {
        uint64_t pos = 0, sum = 0;

        *ret_seeded = 0;
        for (size_t i = 0; i < rb->index.count; pos += rb->index.entries[i].length, i++) {
                if (pos + rb->index.entries[i].length <= offset)
                        continue;
                if (rb->where[i].seed < 0)
                        sum += rb->index.entries[i].blob_length;
                else
                        *ret_seeded += rb->index.entries[i].length;
        }
        return sum;
}

/* One chunk from the registry into rb->chunk: 1 when it is what its entry
 * says, 0 when not (missing, or other bytes), a negative errno when the
 * registry could not be reached. */
static int fetch_chunk(struct rebuild *rb, const struct kos_chunk_entry *e, size_t number) {
        struct kos_oci_chunked_fetch *f = rb->f;
        char digest[KOS_OCI_DIGEST_LEN + 1];
        _cleanup_free_ char *blob = NULL;
        uint8_t sha[KOS_SHA256_LEN];
        size_t len = 0;
        int r = -ECONNRESET;

        digest_string(e->blob_sha256, digest);
        for (unsigned attempt = 0; attempt < 3 && r == -ECONNRESET; attempt++)
                r = kos_oci_blob_get_small(f->client, digest, e->blob_length, &blob, &len);
        if (r == -ENOENT || r == -EFBIG) {
                f->note(f->userdata, "chunk %zu of %s: %s", number, f->label, kos_oci_client_error(f->client));
                return 0;
        }
        if (r < 0)
                return r;
        f->fetched_bytes += len;
        f->fetched_chunks++;
        size_t got = ZSTD_decompressDCtx(rb->dctx, rb->chunk, e->length, blob, len);
        if (ZSTD_isError(got) || got != e->length || kos_sha256(rb->chunk, got, sha) < 0 || !kos_digest_equal(sha, e->sha256)) {
                f->note(f->userdata, "chunk %zu of %s (%s) is not the chunk its index names", number, f->label, digest);
                return 0;
        }
        return 1;
}

/* 1 when the bytes were read, as fetch_chunk(). */
static int read_seed(struct rebuild *rb, const struct location *at, uint32_t length) {
        for (uint32_t done = 0; done < length;) {
                ssize_t n = pread(rb->seeds[at->seed], rb->chunk + done, length - done, (off_t)(at->offset + done));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                done += (uint32_t)n;
        }
        return 1;
}

/* Writes the chunks from f->offset on: 1 when done, 0 when a chunk let us down. */
static int write_chunks(struct rebuild *rb) {
        struct kos_oci_chunked_fetch *f = rb->f;
        uint64_t pos = 0;
        int r;

        for (size_t i = 0; i < rb->index.count; pos += rb->index.entries[i].length, i++) {
                const struct kos_chunk_entry *e = &rb->index.entries[i];
                if (pos + e->length <= f->offset)
                        continue;
                if (rb->where[i].seed >= 0)
                        r = read_seed(rb, &rb->where[i], e->length);
                else
                        r = fetch_chunk(rb, e, i);
                if (r <= 0)
                        return r;
                uint64_t skip = pos < f->offset ? f->offset - pos : 0;
                if ((r = kos_component_sink_write(f->sink, rb->chunk + skip, e->length - skip)) < 0)
                        return r;
                f->written += e->length - skip;
                if (rb->where[i].seed >= 0)
                        f->seeded_bytes += e->length - skip;
        }
        return 1;
}

static void rebuild_done(struct rebuild *rb) {
        for (size_t i = 0; i < rb->n_seeds; i++)
                close(rb->seeds[i]);
        kos_chunk_index_done(&rb->index);
        free(rb->where);
        free(rb->by_hash);
        free(rb->chunk);
        ZSTD_freeDCtx(rb->dctx);
}

int kos_oci_fetch_chunked(struct kos_oci_chunked_fetch *f) {
        struct rebuild rb = {.f = f};
        struct kos_error why = KOS_ERROR_NULL;
        int r;

        f->written = f->fetched_bytes = f->seeded_bytes = 0;
        f->fetched_chunks = 0;
        if (f->seeds->n == 0)
                return 0; /* nothing to rebuild from: the layer costs less than index and chunks */
        /* All the requests of this component end within the bound of one
         * request for the whole layer. */
        kos_oci_client_set_deadline(f->client, f->blob->size - f->offset);
        if ((r = fetch_index(&rb, &why)) == -EBADMSG) {
                f->note(f->userdata, "the chunk index of %s is of no use (%s): fetching the layer", f->label, why.msg);
                r = 0;
                goto out;
        }
        if (r < 0 || (r = locate_chunks(&rb)) < 0)
                goto out;
        /* Chunks only where the seeds hold a part worth the requests: a
         * component the device has nothing of comes in one request, which a
         * broken connection resumes. */
        uint64_t seeded, to_fetch = bytes_to_fetch(&rb, f->offset, &seeded), left = f->blob->size - f->offset;
        if (seeded < left / KOS_OCI_CHUNKS_SEEDED_MIN_PART || to_fetch >= left) {
                f->note(f->userdata, "the seeds hold too little of %s: fetching the layer", f->label);
                r = 0;
                goto out;
        }
        f->note(f->userdata, "rebuilding %s from %zu seeds and %.1f MiB of chunks (%.1f MiB)", f->label, rb.n_seeds,
                (double)to_fetch / 1048576.0, (double)f->blob->size / 1048576.0);
        if (!(rb.chunk = malloc(KOS_CHUNK_MAX)) || !(rb.dctx = ZSTD_createDCtx())) {
                r = -ENOMEM;
                goto out;
        }
        if ((r = write_chunks(&rb)) == 0)
                f->note(f->userdata, "fetching the rest of %s from its layer", f->label);
out:
        kos_oci_client_set_deadline(f->client, UINT64_MAX);
        rebuild_done(&rb);
        return r;
}
