/* SPDX-License-Identifier: MIT */
#include "oci-delta.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#define OUTPUT_CHUNK (1u << 20)

#define digest_string kos_oci_digest_string

/* A read-only map of a whole file; NULL for an empty one. */
static int map_file(int fd, uint64_t size, void **ret) {
        *ret = NULL;
        if (size == 0)
                return 0;
        if (size > SIZE_MAX)
                return -EFBIG;
        void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        *ret = p;
        return 0;
}

static unsigned window_log(uint64_t size) {
        unsigned log = 10;
        while (log < KOS_OCI_DELTA_WINDOW_LOG_MAX && (UINT64_C(1) << log) < size)
                log++;
        return log;
}

/* --- Push ----------------------------------------------------------------- */

static int make_delta(const void *old, uint64_t old_size, const void *new, uint64_t new_size, void *out, size_t cap,
                      size_t *ret_len) {
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        uint64_t larger = old_size > new_size ? old_size : new_size;
        int r = 0;

        if (!cctx)
                return -ENOMEM;
        if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, KOS_OCI_DELTA_ZSTD_LEVEL)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_enableLongDistanceMatching, 1)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, (int)window_log(larger))) ||
            ZSTD_isError(ZSTD_CCtx_refPrefix(cctx, old, (size_t)old_size)))
                r = -EINVAL;
        size_t n = r < 0 ? 0 : ZSTD_compress2(cctx, out, cap, new, (size_t)new_size);
        if (r >= 0 && ZSTD_isError(n))
                r = ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? -E2BIG : -EIO;
        ZSTD_freeCCtx(cctx);
        *ret_len = n;
        return r;
}

static int put_delta_manifest(struct kos_oci_client *c, const uint8_t new_sha256[static KOS_SHA256_LEN],
                              const struct kos_oci_delta_pushed *d) {
        char tag[sizeof KOS_OCI_DELTA_TAG_PREFIX + KOS_SHA256_HEX_LEN];
        char *text = NULL;
        int r;

        json_t *root = json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:i}, s:[{s:s, s:s, s:I}]}", "schemaVersion", 2, "mediaType",
                                 "application/vnd.oci.image.manifest.v1+json", "artifactType", "application/vnd.kos.delta.v1",
                                 "config", "mediaType", "application/vnd.oci.empty.v1+json", "digest",
                                 "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size", 2, "layers",
                                 "mediaType", KOS_OCI_DELTA_TYPE, "digest", d->digest, "size", (json_int_t)d->size);
        if (root)
                text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        if (!text)
                return -ENOMEM;
        memcpy(tag, KOS_OCI_DELTA_TAG_PREFIX, sizeof KOS_OCI_DELTA_TAG_PREFIX - 1);
        kos_hex_encode(new_sha256, KOS_SHA256_LEN, tag + sizeof KOS_OCI_DELTA_TAG_PREFIX - 1);
        r = kos_oci_manifest_put_at(c, tag, "application/vnd.oci.image.manifest.v1+json", text, strlen(text));
        free(text);
        return r;
}

int kos_oci_push_delta(struct kos_oci_client *c, int old_fd, uint64_t old_size, const uint8_t old_sha256[static KOS_SHA256_LEN],
                       int new_fd, uint64_t new_size, const uint8_t new_sha256[static KOS_SHA256_LEN],
                       struct kos_oci_delta_pushed *ret) {
        void *old = NULL, *new = NULL;
        uint8_t sha[KOS_SHA256_LEN];
        size_t len = 0, cap = (size_t)new_size; /* a delta must be smaller than what it stands for */
        _cleanup_free_ uint8_t *out = NULL;
        int r;

        *ret = (struct kos_oci_delta_pushed){0};
        if (old_size == 0 || new_size == 0 || window_log(old_size > new_size ? old_size : new_size) >= KOS_OCI_DELTA_WINDOW_LOG_MAX)
                return -E2BIG;
        if (!(out = malloc(cap)))
                return -ENOMEM;
        if ((r = map_file(old_fd, old_size, &old)) < 0 || (r = map_file(new_fd, new_size, &new)) < 0 ||
            (r = make_delta(old, old_size, new, new_size, out, cap, &len)) < 0 || (r = kos_sha256(out, len, sha)) < 0)
                goto out;
        digest_string(old_sha256, ret->from);
        digest_string(sha, ret->digest);
        ret->size = len;
        if ((r = kos_oci_blob_exists(c, ret->digest)) == 0) {
                if ((r = kos_oci_blob_upload(c, ret->digest, out, -1, len)) < 0)
                        goto out;
                ret->uploaded = true;
        }
        if (r >= 0)
                r = put_delta_manifest(c, new_sha256, ret);
out:
        if (old)
                munmap(old, (size_t)old_size);
        if (new)
                munmap(new, (size_t)new_size);
        return r;
}

/* --- Pull ----------------------------------------------------------------- */

static int why_not(struct kos_oci_delta_fetch *f, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int why_not(struct kos_oci_delta_fetch *f, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        kos_error_setv(&f->why, -EBADMSG, format, ap);
        va_end(ap);
        return 0; /* no failure: the caller fetches the component another way */
}

/* Decompresses the delta against the old component into the sink. */
static int apply_delta(struct kos_oci_delta_fetch *f, const void *delta, size_t len, const void *old) {
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        _cleanup_free_ uint8_t *buffer = malloc(OUTPUT_CHUNK);
        ZSTD_inBuffer in = {delta, len, 0};
        size_t left = 1;
        int r = 1;

        if (!dctx || !buffer) {
                ZSTD_freeDCtx(dctx);
                return -ENOMEM;
        }
        if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, KOS_OCI_DELTA_WINDOW_LOG_MAX)) ||
            ZSTD_isError(ZSTD_DCtx_refPrefix(dctx, old, (size_t)f->old_size)))
                r = why_not(f, "zstd refused the old component as its prefix");
        while (r > 0 && (in.pos < in.size || left != 0)) {
                ZSTD_outBuffer out = {buffer, OUTPUT_CHUNK, 0};
                left = ZSTD_decompressStream(dctx, &out, &in);
                if (ZSTD_isError(left)) {
                        r = why_not(f, "the delta does not decompress (%s)", ZSTD_getErrorName(left));
                        break;
                }
                if (out.pos == 0 && in.pos == in.size && left != 0) {
                        r = why_not(f, "the delta ends before its frame does");
                        break;
                }
                if (f->written + out.pos > f->blob->size) {
                        r = why_not(f, "the delta makes more than the component's %llu bytes", (unsigned long long)f->blob->size);
                        break;
                }
                int w = kos_component_sink_write(f->sink, buffer, out.pos);
                if (w < 0) {
                        r = w;
                        break;
                }
                f->written += out.pos;
        }
        if (r > 0 && f->written != f->blob->size)
                r = why_not(f, "the delta makes %llu bytes, not the component's %llu", (unsigned long long)f->written,
                            (unsigned long long)f->blob->size);
        ZSTD_freeDCtx(dctx);
        return r;
}

int kos_oci_fetch_delta(struct kos_oci_delta_fetch *f) {
        _cleanup_free_ char *delta = NULL;
        uint8_t want[KOS_SHA256_LEN], got[KOS_SHA256_LEN];
        void *old = NULL;
        size_t len;
        int r;

        f->written = f->fetched_bytes = 0;
        kos_error_clear(&f->why);
        if (f->size >= f->blob->size || f->size > SIZE_MAX)
                return why_not(f, "the delta's %llu bytes are not fewer than the component's", (unsigned long long)f->size);
        kos_oci_client_set_deadline(f->client, f->size);
        r = kos_oci_blob_get_small(f->client, f->digest, (size_t)f->size, &delta, &len);
        kos_oci_client_set_deadline(f->client, UINT64_MAX);
        if (r == -ENOENT || r == -EFBIG)
                return why_not(f, "%s", kos_oci_client_error(f->client));
        if (r < 0)
                return r;
        f->fetched_bytes = len;
        if (kos_hex_decode(f->digest + 7, KOS_SHA256_HEX_LEN, want, sizeof want) < 0 || kos_sha256(delta, len, got) < 0 ||
            !kos_digest_equal(want, got))
                return why_not(f, "it does not hash to %s", f->digest);
        if ((r = map_file(f->old_fd, f->old_size, &old)) < 0)
                return r;
        r = apply_delta(f, delta, len, old);
        if (old)
                munmap(old, (size_t)f->old_size);
        return r;
}
