/* SPDX-License-Identifier: MIT */
/* A client of the OCI Distribution API (the registry side of `kos push` and
 * `kos pull`): references, blobs, manifests, and the two ways registries
 * authenticate (basic credentials, and the bearer-token flow public
 * registries use). HTTP and TLS are libcurl's; certificates are always
 * verified. This file and oci.c are the only code linked against libcurl,
 * and they are kept out of libkos.a so the PID 1 programs never link it.
 *
 * What a registry may not do (docs/kos-tool.md, "What a registry cannot
 * do"): take the credentials elsewhere, or hold a transfer open.
 *   - Credentials (and a token got with them) go only to the registry's own
 *     origin (scheme, host, port) and to the token realm of a challenge the
 *     registry's own origin sent, over https (http only when the registry
 *     itself was given as http://). Redirects are followed here, not by curl,
 *     for GET and HEAD only: a request to another origin carries no
 *     credentials, a 401 from there is refused, and so is https -> http.
 *   - Every request has a minimum rate (KOS_OCI_MIN_RATE over
 *     KOS_OCI_STALL_SECONDS), a whole bound (KOS_OCI_STEP_BASE_SECONDS plus
 *     the bytes it expects at KOS_OCI_STEP_RATE), and caps on headers and
 *     on error bodies. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "sha256.h"
#include "util.h"

#define KOS_OCI_HOST_MAX 255
#define KOS_OCI_REPOSITORY_MAX 255
#define KOS_OCI_TAG_MAX 128
#define KOS_OCI_DIGEST_LEN 71 /* "sha256:" and 64 hex digits */

/* [http[s]://]HOST[:PORT]/REPOSITORY:TAG or .../REPOSITORY@sha256:DIGEST;
 * https when no scheme is given. */
struct kos_oci_ref {
        bool plain_http;
        char host[KOS_OCI_HOST_MAX + 1]; /* with :PORT when given */
        char repository[KOS_OCI_REPOSITORY_MAX + 1];
        char tag[KOS_OCI_TAG_MAX + 1]; /* the tag, or the digest ("sha256:" and 64 hex) when by_digest */
        bool by_digest;
};

/* 0, or -EINVAL with ret_error saying what is wrong. The repository follows
 * the Distribution grammar (lowercase path components separated by / with
 * single ., _, __ or - runs inside), the tag [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. */
_kos_must_check_ int kos_oci_ref_parse(const char *s, struct kos_oci_ref *ret, struct kos_error *ret_error);

/* A transfer slower than KOS_OCI_MIN_RATE bytes/s for KOS_OCI_STALL_SECONDS
 * is abandoned (curl's low-speed limit; its rate is measured over the last
 * few seconds, so 100 bytes every 20 s never keeps one alive). */
#define KOS_OCI_MIN_RATE 4096u
#define KOS_OCI_STALL_SECONDS 30u
/* Each request (with its redirects and token requests) ends within
 * KOS_OCI_STEP_BASE_SECONDS plus the bytes it expects (a component's signed
 * size) at KOS_OCI_STEP_RATE bytes/s: a registry sending just above the
 * minimum rate cannot hold it open much longer than an honest slow link. */
#define KOS_OCI_STEP_BASE_SECONDS (4 * KOS_OCI_STALL_SECONDS)
#define KOS_OCI_STEP_RATE (16u << 10)
#define KOS_OCI_ERROR_BODY_CAP (16u << 10) /* an error's body read before the transfer is stopped */
#define KOS_OCI_HEADERS_CAP (64u << 10)    /* the headers of one request, redirects' included */
#define KOS_OCI_REDIRECTS_MAX 5

struct kos_oci_client_options {
        const char *credentials; /* "USER:PASSWORD", or NULL */
        const char *ca_file;     /* PEM CA bundle to trust instead of the system's, or NULL */
        /* Tests only: KOS_OCI_STALL_SECONDS, and the bounds derived from it,
         * shortened to this many seconds (1 to KOS_OCI_STALL_SECONDS); 0 or a
         * larger value is the default. It can make every bound stricter,
         * never looser. */
        unsigned test_stall_seconds;
};

struct kos_oci_client;

_kos_must_check_ int kos_oci_client_new(const struct kos_oci_ref *ref, const struct kos_oci_client_options *options,
                                        struct kos_oci_client **ret);
void kos_oci_client_free(struct kos_oci_client *c);
/* What the last failure was, for people ("HTTP 404 on GET ...", curl's message). */
const char *kos_oci_client_error(const struct kos_oci_client *c);

/* Errors of the requests below, besides -ENOMEM and -EINVAL: -ENOENT (404),
 * -EACCES (credentials refused, or asked for where they may not go),
 * -EPROTO (a redirect or Location refused, headers over their cap),
 * -ETIMEDOUT (under the minimum rate, or past the request's bound),
 * -ECONNRESET (the connection broke: worth resuming), -EIO (the rest);
 * kos_oci_client_error() says which host and why. */

/* Receives a response body in pieces; a negative errno stops the transfer. */
typedef int (*kos_oci_body_fn)(const void *data, size_t len, void *userdata);

/* HEAD of a blob: 1 when the registry has it, 0 when not (404), a negative errno otherwise. */
_kos_must_check_ int kos_oci_blob_exists(struct kos_oci_client *c, const char *digest);

/* Uploads size bytes (from data, or from fd at offset 0 when data is NULL)
 * as the blob digest: POST .../blobs/uploads/, then one PUT of the whole
 * blob to the Location the registry answered, with ?digest=. */
_kos_must_check_ int kos_oci_blob_upload(struct kos_oci_client *c, const char *digest, const void *data, int fd, uint64_t size);

/* GET of a blob from byte offset on (a Range request when offset > 0; a
 * registry that ignores Range answers 200, and then the first offset bytes
 * are skipped here). body receives the bytes. size is how many bytes the
 * blob has in all (from a signed manifest where there is one): the request's
 * bound is scaled to what is left of it. */
_kos_must_check_ int kos_oci_blob_get(struct kos_oci_client *c, const char *digest, uint64_t size, uint64_t offset,
                                      kos_oci_body_fn body, void *userdata);

/* GET of a blob of at most cap bytes into a buffer (NUL-terminated, not counted). */
_kos_must_check_ int kos_oci_blob_get_small(struct kos_oci_client *c, const char *digest, size_t cap, char **ret,
                                            size_t *ret_len);

/* GET of the manifest ref->tag, asking for media_type, at most cap bytes. */
_kos_must_check_ int kos_oci_manifest_get(struct kos_oci_client *c, const char *media_type, size_t cap, char **ret,
                                          size_t *ret_len);

/* PUT of the manifest ref->tag (a tag or a digest). */
_kos_must_check_ int kos_oci_manifest_put(struct kos_oci_client *c, const char *media_type, const char *data, size_t len);
/* PUT of a manifest at another reference (a tag or a digest) of the same repository. */
_kos_must_check_ int kos_oci_manifest_put_at(struct kos_oci_client *c, const char *reference, const char *media_type,
                                             const char *data, size_t len);

const struct kos_oci_ref *kos_oci_client_ref(const struct kos_oci_client *c);

/* "sha256:" and the lowercase hex of sha256: an OCI digest. */
void kos_oci_digest_string(const uint8_t sha256[static KOS_SHA256_LEN], char ret[static KOS_OCI_DIGEST_LEN + 1]);

/* Bounds the requests from now on as one request of expected_size bytes
 * would be bounded (a chunked fetch: hundreds of small requests may not take
 * longer than the one large request they replace); UINT64_MAX lifts it. */
void kos_oci_client_set_deadline(struct kos_oci_client *c, uint64_t expected_size);
