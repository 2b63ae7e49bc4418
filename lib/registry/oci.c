/* SPDX-License-Identifier: MIT */
#include "oci.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "oci-chunks.h"
#include "oci-delta.h"
#include "manifest.h"
#include "signature.h"
#include "verify.h"

/* sha256 of "{}", the OCI empty descriptor's blob. */
#define EMPTY_DIGEST "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

#define digest_string kos_oci_digest_string

/* --- Push ----------------------------------------------------------------- */

/* One blob to publish: bytes in memory (data) or a component file (fd). */
struct push_blob {
        char digest[KOS_OCI_DIGEST_LEN + 1];
        const void *data;
        int fd;
        uint64_t size;
        struct kos_oci_chunks_pushed chunks; /* of a component: its chunk index, when it has one */
        struct kos_oci_delta_pushed delta;   /* and its delta from the release --delta-from names */
};

static int push_blob(struct kos_oci_client *c, const struct push_blob *b, struct kos_oci_push_result *ret) {
        int r = kos_oci_blob_exists(c, b->digest);

        ret->blobs++;
        ret->bytes += b->size;
        if (r != 0)
                return r < 0 ? r : 0; /* there already: not sent again */
        if ((r = kos_oci_blob_upload(c, b->digest, b->data, b->fd, b->size)) < 0)
                return r;
        ret->uploaded++;
        ret->bytes_uploaded += b->size;
        return 0;
}

static json_t *descriptor(const char *media_type, const char *digest, uint64_t size) {
        return json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", digest, "size", (json_int_t)size);
}

/* The roles of the blob at index i (it may serve several): "kernel",
 * "initrd", "boot-kernel", "dbx-update", "component:NAME", comma-separated. */
static void blob_roles(const struct kos_blob *const *blobs, const char *const *labels, size_t n, size_t i, char *ret, size_t size) {
        size_t len = 0;

        ret[0] = '\0';
        for (size_t j = i; j < n; j++) {
                if (memcmp(blobs[j]->sha256, blobs[i]->sha256, KOS_SHA256_LEN) != 0)
                        continue;
                bool plain = strcmp(labels[j], "kernel") == 0 || strcmp(labels[j], "initrd") == 0 ||
                             strcmp(labels[j], "boot-kernel") == 0 || strcmp(labels[j], "dbx-update") == 0;
                int w = snprintf(ret + len, size - len, "%s%s%s", len ? "," : "", plain ? "" : "component:", labels[j]);
                if (w < 0 || (size_t)w >= size - len)
                        break;
                len += (size_t)w;
        }
}

static bool seen_before(const struct kos_blob *const *blobs, size_t i) {
        for (size_t j = 0; j < i; j++)
                if (memcmp(blobs[j]->sha256, blobs[i]->sha256, KOS_SHA256_LEN) == 0)
                        return true;
        return false;
}

/* The first role of a blob without "component:": its label in the manifest. */
static const char *first_label(const char *roles) {
        static char label[KOS_NAME_MAX + 16];
        const char *first = strncmp(roles, "component:", 10) == 0 ? roles + 10 : roles;

        snprintf(label, sizeof label, "%.*s", (int)strcspn(first, ","), first);
        return label;
}

/* A component's layer: its roles; its title (the first role without
 * "component:", so `oras pull` names the file); its chunk index, when
 * it has one. */
static json_t *component_descriptor(const struct push_blob *b, const char *roles) {
        char index_size[24];
        json_t *annotations = json_pack("{s:s, s:s}", KOS_OCI_ROLE_ANNOTATION, roles, "org.opencontainers.image.title", first_label(roles));
        if (annotations && b->chunks.index_digest[0]) {
                snprintf(index_size, sizeof index_size, "%llu", (unsigned long long)b->chunks.index_size); /* annotations are strings */
                json_object_set_new(annotations, KOS_OCI_CHUNK_INDEX_ANNOTATION, json_string(b->chunks.index_digest));
                json_object_set_new(annotations, KOS_OCI_CHUNK_INDEX_SIZE_ANNOTATION, json_string(index_size));
        }
        if (annotations && b->delta.digest[0]) {
                snprintf(index_size, sizeof index_size, "%llu", (unsigned long long)b->delta.size);
                json_object_set_new(annotations, KOS_OCI_DELTA_FROM_ANNOTATION, json_string(b->delta.from));
                json_object_set_new(annotations, KOS_OCI_DELTA_ANNOTATION, json_string(b->delta.digest));
                json_object_set_new(annotations, KOS_OCI_DELTA_SIZE_ANNOTATION, json_string(index_size));
        }
        return json_pack("{s:s, s:s, s:I, s:o}", "mediaType", KOS_OCI_COMPONENT_LAYER_TYPE, "digest", b->digest, "size",
                         (json_int_t)b->size, "annotations", annotations);
}

/* The OCI image manifest: empty config, then the KOS manifest, its
 * signature and each distinct component, in the manifest's order. */
static char *artifact_manifest(const struct kos_loaded_manifest *m, const struct push_blob *json_blob,
                               const struct push_blob *sig_blob, const struct push_blob *components, size_t n_components,
                               const char *const *roles) {
        json_t *layers = json_array(), *root;
        char *text = NULL;

        json_array_append_new(layers, json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", KOS_OCI_MANIFEST_LAYER_TYPE, "digest",
                                                json_blob->digest, "size", (json_int_t)json_blob->size, "annotations",
                                                "org.opencontainers.image.title", "manifest.json"));
        json_array_append_new(layers, json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", KOS_OCI_SIGNATURE_LAYER_TYPE, "digest",
                                                sig_blob->digest, "size", (json_int_t)sig_blob->size, "annotations",
                                                "org.opencontainers.image.title", "manifest.json.sig"));
        for (size_t i = 0; i < n_components; i++)
                json_array_append_new(layers, component_descriptor(&components[i], roles[i]));
        char version[24];
        snprintf(version, sizeof version, "%llu", (unsigned long long)m->manifest->version); /* annotations are strings */
        json_t *config = descriptor(KOS_OCI_EMPTY_TYPE, EMPTY_DIGEST, 2);
        json_object_set_new(config, "data", json_string("e30=")); /* base64 of "{}" */
        root = json_pack("{s:i, s:s, s:s, s:o, s:o, s:{s:s, s:s}}", "schemaVersion", 2, "mediaType", KOS_OCI_IMAGE_MANIFEST_TYPE,
                         "artifactType", KOS_OCI_ARTIFACT_TYPE, "config", config, "layers", layers, "annotations",
                         "io.kos.manifest.name", m->manifest->name, "io.kos.manifest.version", version);
        if (root)
                text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return text;
}

static int open_components(const struct kos_imagefs *img, const struct kos_blob *const *blobs, const char *const *labels,
                           size_t n, struct push_blob *ret, char (*roles)[512], size_t *ret_n, struct kos_oci_push_result *res) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                char hex[KOS_SHA256_HEX_LEN + 1];
                struct stat st;

                if (seen_before(blobs, i))
                        continue;
                kos_hex_encode(blobs[i]->sha256, KOS_SHA256_LEN, hex);
                ret[k] = (struct push_blob){.fd = kos_open_regular_at(img->components_fd, hex, O_NOFOLLOW, &st), .size = blobs[i]->size};
                digest_string(blobs[i]->sha256, ret[k].digest);
                blob_roles(blobs, labels, n, i, roles[k], sizeof roles[k]);
                if (ret[k].fd < 0 || (uint64_t)st.st_size != blobs[i]->size) {
                        *ret_n = k + (ret[k].fd >= 0);
                        return kos_error_set(&res->error, -EBADMSG, "component %s (components/%s) is %s", labels[i], hex,
                                      ret[k].fd < 0 ? "missing" : "not of the manifest's size");
                }
                k++;
        }
        *ret_n = k;
        return 0;
}

/* A component's chunks and index (docs/format.md, "Chunked components"). */
static int push_component_chunks(struct kos_oci_client *c, struct push_blob *b, struct kos_oci_push_result *ret) {
        uint8_t sha[KOS_SHA256_LEN];
        int r;

        if (b->size < KOS_OCI_CHUNKED_MIN_SIZE)
                return 0;
        if (kos_hex_decode(b->digest + 7, KOS_SHA256_HEX_LEN, sha, sizeof sha) < 0)
                return -EINVAL;
        if ((r = kos_oci_push_chunks(c, b->fd, sha, b->size, &b->chunks)) < 0)
                return r;
        ret->chunk_blobs += b->chunks.chunks + 1;
        ret->chunk_blobs_uploaded += b->chunks.uploaded;
        ret->chunk_bytes += b->chunks.bytes;
        ret->chunk_bytes_uploaded += b->chunks.bytes_uploaded;
        return 0;
}

/* The delta of component b (labelled label in the new manifest) from the
 * component of the same label in the release old, when that differs. */
static int push_component_delta(struct kos_oci_client *c, const struct kos_imagefs *img, const struct kos_manifest *old,
                                const char *label, struct push_blob *b, struct kos_oci_push_result *ret) {
        const struct kos_blob *blobs[KOS_MANIFEST_MAX_BLOBS];
        const char *labels[KOS_MANIFEST_MAX_BLOBS];
        size_t n = kos_manifest_blobs(old, blobs, labels, ELEMENTSOF(blobs));
        char hex[KOS_SHA256_HEX_LEN + 1];
        uint8_t sha[KOS_SHA256_LEN];
        int r;

        if (kos_hex_decode(b->digest + 7, KOS_SHA256_HEX_LEN, sha, sizeof sha) < 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (strcmp(labels[i], label) != 0 || memcmp(blobs[i]->sha256, sha, KOS_SHA256_LEN) == 0)
                        continue;
                kos_hex_encode(blobs[i]->sha256, KOS_SHA256_LEN, hex);
                _cleanup_close_ int fd = kos_open_regular_at(img->components_fd, hex, O_NOFOLLOW, NULL);
                if (fd < 0)
                        return kos_error_set(&ret->error, -EBADMSG, "--delta-from: component %s (components/%s) is missing",
                                           label, hex);
                r = kos_oci_push_delta(c, fd, blobs[i]->size, blobs[i]->sha256, b->fd, b->size, sha, &b->delta);
                if (r == -E2BIG)
                        return 0; /* no smaller than the component: no delta */
                if (r < 0)
                        return r;
                ret->deltas++;
                ret->delta_bytes += b->delta.size;
                return 0;
        }
        return 0;
}

/* What a push to a digest reference must match, and what the registry
 * names the artifact by: the sha256 of the OCI manifest's bytes. */
static int check_artifact_digest(struct kos_oci_client *c, const char *text, struct kos_oci_push_result *ret) {
        const struct kos_oci_ref *ref = kos_oci_client_ref(c);
        uint8_t sha[KOS_SHA256_LEN];
        int r;

        if ((r = kos_sha256(text, strlen(text), sha)) < 0)
                return r;
        digest_string(sha, ret->digest);
        if (ref->by_digest && strcmp(ref->tag, ret->digest) != 0)
                return kos_error_set(&ret->error, -EBADMSG,
                                   "the artifact is %s, not %s: a digest reference names exactly one artifact", ret->digest,
                                   ref->tag);
        return 0;
}

int kos_oci_push(struct kos_oci_client *c, const struct kos_imagefs *img, const char *name, const struct kos_keyring *ring,
                 const struct kos_oci_push_options *options, struct kos_oci_push_result *ret) {
        char json_path[KOS_NAME_MAX + 8], sig_path[KOS_NAME_MAX + 12];
        const struct kos_blob *blobs[KOS_MANIFEST_MAX_BLOBS];
        const char *labels[KOS_MANIFEST_MAX_BLOBS];
        struct push_blob components[KOS_MANIFEST_MAX_BLOBS];
        char roles[KOS_MANIFEST_MAX_BLOBS][512];
        const char *role_ptrs[KOS_MANIFEST_MAX_BLOBS];
        struct kos_loaded_manifest m, old;
        bool old_loaded = false;
        _cleanup_free_ char *text = NULL;
        size_t n_components = 0;
        int r;

        *ret = (struct kos_oci_push_result){0};
        if (!kos_name_is_valid(name))
                return kos_error_set(&ret->error, -EBADMSG, "\"%.80s\" is not a manifest name", name);
        kos_manifest_file_names(name, json_path, sig_path);
        r = ring ? kos_manifest_load_verified_at(ring, img->manifests_fd, json_path, sig_path, "manifests/", &m)
                 : kos_manifest_load_unverified_at(img->manifests_fd, json_path, sig_path, "manifests/", &m);
        if (r < 0) {
                if (r == -EBADMSG || m.reason == KOS_REASON_MANIFEST_MISSING)
                        r = kos_error_set(&ret->error, -EBADMSG, "%s: %s", kos_reason_to_string(m.reason), m.error.msg);
                kos_loaded_manifest_done(&m);
                return r;
        }
        size_t n = kos_manifest_blobs(m.manifest, blobs, labels, ELEMENTSOF(blobs));
        struct push_blob json_blob = {.data = m.json, .fd = -1, .size = m.json_len},
                         sig_blob = {.data = m.sig, .fd = -1, .size = m.sig_len},
                         empty = {.digest = EMPTY_DIGEST, .data = "{}", .fd = -1, .size = 2};
        digest_string(m.id, json_blob.digest);
        uint8_t sig_sha[KOS_SHA256_LEN];
        if ((r = kos_sha256(m.sig, m.sig_len, sig_sha)) < 0)
                goto out;
        digest_string(sig_sha, sig_blob.digest);
        if ((r = open_components(img, blobs, labels, n, components, roles, &n_components, ret)) < 0)
                goto out;
        if (options && options->delta_from) {
                char old_json[KOS_NAME_MAX + 8], old_sig[KOS_NAME_MAX + 12];
                if (!kos_name_is_valid(options->delta_from)) {
                        r = kos_error_set(&ret->error, -EBADMSG, "\"%.80s\" is not a manifest name", options->delta_from);
                        goto out;
                }
                kos_manifest_file_names(options->delta_from, old_json, old_sig);
                r = kos_manifest_load_unverified_at(img->manifests_fd, old_json, old_sig, "manifests/", &old);
                old_loaded = true;
                if (r < 0) {
                        if (r == -EBADMSG || old.reason == KOS_REASON_MANIFEST_MISSING)
                                r = kos_error_set(&ret->error, -EBADMSG, "--delta-from %s: %s: %s", options->delta_from,
                                                kos_reason_to_string(old.reason), old.error.msg);
                        goto out;
                }
        }
        /* Components first, the manifest last: a registry never holds an
         * artifact whose blobs are not all there. */
        if ((r = push_blob(c, &empty, ret)) < 0 || (r = push_blob(c, &json_blob, ret)) < 0 || (r = push_blob(c, &sig_blob, ret)) < 0)
                goto out;
        for (size_t i = 0; i < n_components; i++) {
                role_ptrs[i] = roles[i];
                if ((r = push_blob(c, &components[i], ret)) < 0 ||
                    (!(options && options->no_chunks) && (r = push_component_chunks(c, &components[i], ret)) < 0) ||
                    (old_loaded && (r = push_component_delta(c, img, old.manifest, first_label(roles[i]), &components[i], ret)) < 0))
                        goto out;
        }
        text = artifact_manifest(&m, &json_blob, &sig_blob, components, n_components, role_ptrs);
        if (!text)
                r = -ENOMEM;
        else if ((r = check_artifact_digest(c, text, ret)) >= 0)
                r = kos_oci_manifest_put(c, KOS_OCI_IMAGE_MANIFEST_TYPE, text, strlen(text));
out:
        for (size_t i = 0; i < n_components; i++)
                kos_closep(&components[i].fd);
        kos_loaded_manifest_done(&m);
        if (old_loaded)
                kos_loaded_manifest_done(&old);
        return r;
}

/* --- Pull ----------------------------------------------------------------- */

struct pull {
        struct kos_oci_client *client;
        const struct kos_imagefs *img;
        const struct kos_oci_pull_options *options;
        struct kos_bundle_result *result;
        struct kos_oci_artifact artifact;
        uint64_t cut_left; /* test_cut_after: bytes left before the cut */
        struct kos_oci_seeds seeds; /* listed at the first fetch, when listed is set */
        bool seeds_listed;
        /* one component download */
        struct kos_component_sink *sink;
        uint64_t received; /* bytes of it that came in this pull */
};

static void vnote(const struct pull *p, const char *format, va_list ap) __attribute__((format(printf, 2, 0)));
static void vnote(const struct pull *p, const char *format, va_list ap) {
        char line[512];

        if (!p->options->note)
                return;
        vsnprintf(line, sizeof line, format, ap);
        p->options->note(line, p->options->note_userdata);
}

static void note(const struct pull *p, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void note(const struct pull *p, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vnote(p, format, ap);
        va_end(ap);
}

/* The chunk index a component layer names: a sha256 digest and a size of
 * 1 to UINT32_MAX bytes as a decimal string. Anything else is no index
 * (the layer is fetched whole): a client must not be stopped by what it may
 * do without. */
static void parse_chunk_index_annotations(struct kos_oci_layer *l, json_t *annotations) {
        const char *digest = json_string_value(json_object_get(annotations, KOS_OCI_CHUNK_INDEX_ANNOTATION));
        const char *size = json_string_value(json_object_get(annotations, KOS_OCI_CHUNK_INDEX_SIZE_ANNOTATION));
        uint8_t raw[KOS_SHA256_LEN];
        char *end;

        if (!digest || !size || strlen(digest) != KOS_OCI_DIGEST_LEN || strncmp(digest, "sha256:", 7) != 0 ||
            kos_hex_decode(digest + 7, KOS_SHA256_HEX_LEN, raw, sizeof raw) < 0 || size[0] < '1' || size[0] > '9')
                return;
        errno = 0;
        unsigned long long v = strtoull(size, &end, 10);
        if (errno || *end || v > UINT32_MAX)
                return;
        memcpy(l->chunk_index, digest, sizeof l->chunk_index);
        l->chunk_index_size = v;
}

static bool parse_digest(const char *digest, uint8_t raw[static KOS_SHA256_LEN]) {
        return digest && strlen(digest) == KOS_OCI_DIGEST_LEN && strncmp(digest, "sha256:", 7) == 0 &&
               kos_hex_decode(digest + 7, KOS_SHA256_HEX_LEN, raw, KOS_SHA256_LEN) == 0;
}

static bool parse_size_annotation(const char *size, uint64_t *ret) {
        char *end;

        if (!size || size[0] < '1' || size[0] > '9')
                return false;
        errno = 0;
        unsigned long long v = strtoull(size, &end, 10);
        if (errno || *end || v > KOS_BLOB_SIZE_MAX)
                return false;
        *ret = v;
        return true;
}

/* The delta a component layer names (docs/format.md, "Component deltas"):
 * anything malformed is no delta. */
static void parse_delta_annotations(struct kos_oci_layer *l, json_t *annotations) {
        const char *from = json_string_value(json_object_get(annotations, KOS_OCI_DELTA_FROM_ANNOTATION));
        const char *digest = json_string_value(json_object_get(annotations, KOS_OCI_DELTA_ANNOTATION));
        uint8_t raw[KOS_SHA256_LEN];
        uint64_t size;

        if (!parse_digest(from, l->delta_from) || !parse_digest(digest, raw) ||
            !parse_size_annotation(json_string_value(json_object_get(annotations, KOS_OCI_DELTA_SIZE_ANNOTATION)), &size))
                return;
        memcpy(l->delta, digest, sizeof l->delta);
        l->delta_size = size;
}

static int parse_layer(struct kos_oci_artifact *a, json_t *j, size_t index, struct kos_error *ret_error) {
        struct kos_oci_layer *l = &a->layers[a->n_layers];
        const char *media_type = json_string_value(json_object_get(j, "mediaType"));
        const char *digest = json_string_value(json_object_get(j, "digest"));
        json_t *bytes = json_object_get(j, "size");
        uint8_t raw[KOS_SHA256_LEN];

        if (!media_type || !digest || strlen(digest) != KOS_OCI_DIGEST_LEN || strncmp(digest, "sha256:", 7) != 0 ||
            kos_hex_decode(digest + 7, KOS_SHA256_HEX_LEN, raw, sizeof raw) < 0 || !json_is_integer(bytes) ||
            json_integer_value(bytes) < 0 || (uint64_t)json_integer_value(bytes) > KOS_BLOB_SIZE_MAX)
                return kos_error_set(ret_error, -EBADMSG, "not a KOS artifact: layer %zu has no mediaType, sha256 digest or size", index);
        /* Only the media types this reader knows are kept by name; others are "other". */
        l->kind = strcmp(media_type, KOS_OCI_MANIFEST_LAYER_TYPE) == 0    ? KOS_OCI_LAYER_MANIFEST
                  : strcmp(media_type, KOS_OCI_SIGNATURE_LAYER_TYPE) == 0 ? KOS_OCI_LAYER_SIGNATURE
                  : strcmp(media_type, KOS_OCI_COMPONENT_LAYER_TYPE) == 0 ? KOS_OCI_LAYER_COMPONENT
                                                                           : KOS_OCI_LAYER_OTHER;
        memcpy(l->digest, digest, sizeof l->digest);
        l->size = (uint64_t)json_integer_value(bytes);
        l->chunk_index[0] = '\0';
        l->chunk_index_size = 0;
        l->delta[0] = '\0';
        l->delta_size = 0;
        if (l->kind == KOS_OCI_LAYER_COMPONENT) {
                parse_chunk_index_annotations(l, json_object_get(j, "annotations"));
                parse_delta_annotations(l, json_object_get(j, "annotations"));
        }
        if (l->kind == KOS_OCI_LAYER_MANIFEST || l->kind == KOS_OCI_LAYER_SIGNATURE) {
                int *slot = l->kind == KOS_OCI_LAYER_MANIFEST ? &a->manifest : &a->signature;
                if (*slot >= 0)
                        return kos_error_set(ret_error, -EBADMSG, "not a KOS artifact: two layers of type %s", media_type);
                *slot = (int)a->n_layers;
        }
        a->n_layers++;
        return 0;
}

static int parse_artifact(json_t *root, struct kos_oci_artifact *a, struct kos_error *ret_error) {
        json_t *layers = json_object_get(root, "layers"), *j;
        const char *media_type = json_string_value(json_object_get(root, "mediaType"));
        const char *artifact_type = json_string_value(json_object_get(root, "artifactType"));
        size_t i;
        int r;

        if (!json_is_object(root))
                return kos_error_set(ret_error, -EBADMSG, "the registry's manifest is not a JSON object");
        if (json_integer_value(json_object_get(root, "schemaVersion")) != 2 ||
            (media_type && strcmp(media_type, KOS_OCI_IMAGE_MANIFEST_TYPE) != 0))
                return kos_error_set(ret_error, -EBADMSG, "not an OCI image manifest (schemaVersion 2, %s)", KOS_OCI_IMAGE_MANIFEST_TYPE);
        if (!artifact_type || strcmp(artifact_type, KOS_OCI_ARTIFACT_TYPE) != 0)
                return kos_error_set(ret_error, -EBADMSG, "not a KOS artifact: artifactType is %.80s, not %s",
                              artifact_type ? artifact_type : "missing", KOS_OCI_ARTIFACT_TYPE);
        if (!json_is_array(layers) || json_array_size(layers) > ELEMENTSOF(a->layers))
                return kos_error_set(ret_error, -EBADMSG, "not a KOS artifact: no layers, or more than %zu", ELEMENTSOF(a->layers));
        json_array_foreach(layers, i, j)
                if ((r = parse_layer(a, j, i, ret_error)) < 0)
                        return r;
        if (a->manifest < 0 || a->signature < 0)
                return kos_error_set(ret_error, -EBADMSG, "not a KOS artifact: no %s layer",
                              a->manifest >= 0 ? KOS_OCI_SIGNATURE_LAYER_TYPE : KOS_OCI_MANIFEST_LAYER_TYPE);
        return 0;
}

int kos_oci_artifact_parse(const char *untrusted, size_t len, struct kos_oci_artifact *ret, struct kos_error *ret_error) {
        *ret = (struct kos_oci_artifact){.manifest = -1, .signature = -1};
        if (len > KOS_OCI_IMAGE_MANIFEST_MAX)
                return kos_error_set(ret_error, -EBADMSG, "the registry's manifest is over %u bytes", KOS_OCI_IMAGE_MANIFEST_MAX);
        json_t *root = json_loadb(untrusted, len, JSON_REJECT_DUPLICATES, NULL);
        int r = parse_artifact(root, ret, ret_error);
        json_decref(root);
        return r;
}

/* A small layer (the KOS manifest, its signature), capped before and while
 * it is fetched, and checked against its digest. */
static int fetch_small_layer(struct pull *p, const struct kos_oci_layer *l, size_t cap, char **ret, size_t *ret_len) {
        uint8_t want[KOS_SHA256_LEN], got[KOS_SHA256_LEN];
        int r;

        if (l->size > cap)
                return kos_error_set(&p->result->error, -EBADMSG, "layer %s of %llu bytes is over its cap of %zu bytes",
                              l->digest, (unsigned long long)l->size, cap);
        if ((r = kos_oci_blob_get_small(p->client, l->digest, cap, ret, ret_len)) < 0)
                return r;
        if (kos_hex_decode(l->digest + 7, KOS_SHA256_HEX_LEN, want, sizeof want) < 0 || kos_sha256(*ret, *ret_len, got) < 0 ||
            !kos_digest_equal(want, got) || *ret_len != l->size) {
                free(TAKE_PTR(*ret));
                return kos_error_set(&p->result->error, -EBADMSG, "blob-digest-mismatch: a layer does not hash to %s",
                              l->digest);
        }
        return 0;
}

static int on_component_bytes(const void *data, size_t len, void *userdata) {
        struct pull *p = userdata;

        if (p->options->test_cut_after) {
                if (p->cut_left == 0)
                        return -ECONNRESET;
                if (len > p->cut_left)
                        len = (size_t)p->cut_left;
                p->cut_left -= len;
        }
        int r = kos_component_sink_write(p->sink, data, len);
        if (r >= 0)
                p->received += len;
        if (r >= 0 && p->options->test_cut_after && p->cut_left == 0)
                r = -ECONNRESET;
        return r;
}

static void chunk_note(void *userdata, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void chunk_note(void *userdata, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vnote(userdata, format, ap);
        va_end(ap);
}

/* The component from its chunk index and the seeds: 1 when all of it was
 * written, 0 when the rest (from *offset on) must come from the layer, a
 * negative errno when the pull fails. */
static int fetch_chunks(struct pull *p, const struct kos_oci_layer *l, const struct kos_blob *blob, const char *label,
                        uint64_t *offset, struct kos_component_sink *sink) {
        struct kos_oci_chunked_fetch f = {.client = p->client, .components_fd = p->img->components_fd, .seeds = &p->seeds,
                                          .blob = blob, .label = label,
                                          .index_digest = l->chunk_index, .index_size = l->chunk_index_size, .offset = *offset,
                                          .sink = sink, .note = chunk_note, .userdata = p};
        int r = kos_oci_fetch_chunked(&f);

        if (f.fetched_bytes || f.seeded_bytes)
                note(p, "%s: %.1f MiB from the device's components, %u chunks and the index fetched (%llu bytes)", label,
                     (double)f.seeded_bytes / 1048576.0, f.fetched_chunks, (unsigned long long)f.fetched_bytes);
        p->result->chunk_fetched_bytes += f.fetched_bytes;
        p->result->chunk_seeded_bytes += f.seeded_bytes;
        *offset += f.written;
        return r;
}

/* The component from the old one the device holds and the delta the layer
 * names: 1 when all of it was written, 0 when the rest (from *offset on)
 * must come another way, a negative errno when the pull fails. */
static int fetch_delta(struct pull *p, const struct kos_oci_layer *l, const struct kos_blob *blob, const char *label,
                       uint64_t *offset, struct kos_component_sink *sink) {
        char hex[KOS_SHA256_HEX_LEN + 1];
        bool held = false;
        struct stat st;

        kos_hex_encode(l->delta_from, KOS_SHA256_LEN, hex);
        for (size_t i = 0; i < p->seeds.n && !held; i++)
                held = strcmp(p->seeds.names[i], hex) == 0;
        if (!held)
                return 0;
        _cleanup_close_ int fd = kos_open_regular_at(p->img->components_fd, hex, O_NOFOLLOW, &st);
        if (fd < 0)
                return 0;
        struct kos_oci_delta_fetch f = {.client = p->client, .old_fd = fd, .old_size = (uint64_t)st.st_size, .blob = blob,
                                        .digest = l->delta, .size = l->delta_size, .sink = sink};
        note(p, "fetching the delta of %s from the one this device has (%.1f MiB)", label, (double)l->delta_size / 1048576.0);
        int r = kos_oci_fetch_delta(&f);
        p->result->chunk_fetched_bytes += f.fetched_bytes;
        if (r == 0)
                note(p, "the delta of %s is of no use (%s): %s", label, f.why.msg, f.written ? "fetching the rest" : "fetching chunks or the layer");
        *offset += f.written;
        return r;
}

/* kos_manifest_install()'s source: called only once the KOS manifest has
 * authenticated and passed the rollback floor, for a blob the ImageFS lacks.
 * A connection that breaks after bytes came is asked again for the rest
 * (a Range request), at most KOS_OCI_FETCH_ATTEMPTS times in all; a
 * transfer too slow or past its bound is not. */
static int fetch_component(void *userdata, const struct kos_blob *blob, const char *label, uint64_t offset,
                           struct kos_component_sink *sink) {
        struct pull *p = userdata;

        if (!p->seeds_listed) {
                /* Before this pull adds any: what it fetches itself is no seed. */
                if (kos_oci_list_seeds(p->img->components_fd, &p->seeds) < 0)
                        p->seeds.n = 0;
                p->seeds_listed = true;
        }
        char digest[KOS_OCI_DIGEST_LEN + 1];
        const struct kos_oci_layer *l = NULL;
        int r;

        digest_string(blob->sha256, digest);
        for (size_t i = 0; i < p->artifact.n_layers && !l; i++)
                if (strcmp(p->artifact.layers[i].digest, digest) == 0 && p->artifact.layers[i].kind == KOS_OCI_LAYER_COMPONENT)
                        l = &p->artifact.layers[i];
        if (!l)
                return kos_component_sink_refuse(sink, "component-missing: the artifact has no %s layer with %s's sha256 (%s)",
                                                 KOS_OCI_COMPONENT_LAYER_TYPE, label, digest);
        if (l->size != blob->size)
                return kos_component_sink_refuse(sink, "component-size-mismatch: the layer of %s has %llu bytes, the manifest says %llu",
                                                 label, (unsigned long long)l->size, (unsigned long long)blob->size);
        if (offset == blob->size)
                return 0; /* a pull killed before the rename got every byte */
        if (l->delta[0] && offset == 0) {
                if ((r = fetch_delta(p, l, blob, label, &offset, sink)) != 0)
                        return r < 0 ? r : 0;
        }
        if (l->chunk_index[0]) {
                if ((r = fetch_chunks(p, l, blob, label, &offset, sink)) != 0)
                        return r < 0 ? r : 0;
                if (offset == blob->size)
                        return 0;
        }
        if (offset > 0)
                note(p, "resuming %s at %.1f of %.1f MiB", label, (double)offset / 1048576.0, (double)blob->size / 1048576.0);
        else
                note(p, "fetching %s (%.1f MiB)", label, (double)blob->size / 1048576.0);
        p->sink = sink;
        p->received = 0;
        for (unsigned attempt = 1;; attempt++) {
                uint64_t before = p->received;
                p->cut_left = p->options->test_cut_after;
                r = kos_oci_blob_get(p->client, digest, blob->size, offset + p->received, on_component_bytes, p);
                if (r != -ECONNRESET || attempt == KOS_OCI_FETCH_ATTEMPTS || p->received == before)
                        break;
                note(p, "the transfer of %s broke at %.1f of %.1f MiB: resuming", label,
                     (double)(offset + p->received) / 1048576.0, (double)blob->size / 1048576.0);
        }
        p->sink = NULL;
        if (r == -ECONNRESET && p->options->test_cut_after)
                kos_error_set(&p->result->error, r, "the transfer was cut (KOS_OCI_TEST_CUT_AFTER)");
        return r;
}

/* A manifest asked for by digest must hash to it: the registry is not trusted to serve what it was asked for. */
static int check_pulled_digest(struct kos_oci_client *c, const char *text, size_t len, struct kos_bundle_result *result) {
        const struct kos_oci_ref *ref = kos_oci_client_ref(c);
        char digest[KOS_OCI_DIGEST_LEN + 1];
        uint8_t sha[KOS_SHA256_LEN];
        int r;

        if (!ref->by_digest)
                return 0;
        if ((r = kos_sha256(text, len, sha)) < 0)
                return r;
        digest_string(sha, digest);
        if (strcmp(digest, ref->tag) != 0)
                return kos_error_set(&result->error, -EBADMSG,
                                   "manifest-digest-mismatch: the registry answered %s with a manifest that hashes to %s", ref->tag,
                                   digest);
        return 0;
}

int kos_oci_pull(struct kos_oci_client *c, const struct kos_imagefs *img, const struct kos_keyring *ring,
                 const struct kos_oci_pull_options *options, struct kos_bundle_result *result) {
        _cleanup_free_ char *text = NULL, *untrusted_json = NULL, *untrusted_sig = NULL;
        size_t text_len, json_len, sig_len;
        int r;

        memset(result, 0, sizeof *result);
        struct pull *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        *p = (struct pull){.client = c, .img = img, .options = options, .result = result};
        if ((r = kos_oci_manifest_get(c, KOS_OCI_IMAGE_MANIFEST_TYPE, KOS_OCI_IMAGE_MANIFEST_MAX, &text, &text_len)) < 0)
                goto out;
        struct kos_oci_artifact *a = &p->artifact;
        if ((r = check_pulled_digest(c, text, text_len, result)) < 0)
                goto out;
        if ((r = kos_oci_artifact_parse(text, text_len, a, &result->error)) < 0 ||
            (r = fetch_small_layer(p, &a->layers[a->manifest], KOS_MANIFEST_MAX, &untrusted_json, &json_len)) < 0 ||
            (r = fetch_small_layer(p, &a->layers[a->signature], KOS_SIGNATURE_FILE_MAX, &untrusted_sig, &sig_len)) < 0)
                goto out;
        struct kos_component_source source = {.fetch = fetch_component, .userdata = p, .resumable = true};
        r = kos_manifest_install(img, ring, untrusted_json, json_len, untrusted_sig, sig_len, &source, &options->install, result);
out:
        free(p);
        return r;
}
