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
#include "manifest.h"
#include "signature.h"
#include "verify.h"

/* sha256 of "{}", the OCI empty descriptor's blob. */
#define EMPTY_DIGEST "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

static void digest_string(const uint8_t sha256[static KOS_SHA256_LEN], char ret[static KOS_OCI_DIGEST_LEN + 1]) {
        memcpy(ret, "sha256:", 7);
        kos_hex_encode(sha256, KOS_SHA256_LEN, ret + 7);
}

/* --- Push ----------------------------------------------------------------- */

/* One blob to publish: bytes in memory (data) or a component file (fd). */
struct push_blob {
        char digest[KOS_OCI_DIGEST_LEN + 1];
        const void *data;
        int fd;
        uint64_t size;
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
 * "initrd", "boot-kernel", "component:NAME", comma-separated. */
static void blob_roles(const struct kos_blob *const *blobs, const char *const *labels, size_t n, size_t i, char *ret, size_t size) {
        size_t len = 0;

        ret[0] = '\0';
        for (size_t j = i; j < n; j++) {
                if (memcmp(blobs[j]->sha256, blobs[i]->sha256, KOS_SHA256_LEN) != 0)
                        continue;
                bool plain = strcmp(labels[j], "kernel") == 0 || strcmp(labels[j], "initrd") == 0 ||
                             strcmp(labels[j], "boot-kernel") == 0;
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
                json_array_append_new(layers, json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", KOS_OCI_COMPONENT_LAYER_TYPE,
                                                        "digest", components[i].digest, "size", (json_int_t)components[i].size,
                                                        "annotations", KOS_OCI_ROLE_ANNOTATION, roles[i]));
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
                        return kos_say_why(-EBADMSG, res->error, sizeof res->error, "component %s (components/%s) is %s", labels[i], hex,
                                      ret[k].fd < 0 ? "missing" : "not of the manifest's size");
                }
                k++;
        }
        *ret_n = k;
        return 0;
}

int kos_oci_push(struct kos_oci_client *c, const struct kos_imagefs *img, const char *name, const struct kos_keyring *ring,
                 struct kos_oci_push_result *ret) {
        char json_path[KOS_NAME_MAX + 8], sig_path[KOS_NAME_MAX + 12];
        const struct kos_blob *blobs[KOS_MANIFEST_MAX_BLOBS];
        const char *labels[KOS_MANIFEST_MAX_BLOBS];
        struct push_blob components[KOS_MANIFEST_MAX_BLOBS];
        char roles[KOS_MANIFEST_MAX_BLOBS][512];
        const char *role_ptrs[KOS_MANIFEST_MAX_BLOBS];
        struct kos_loaded_manifest m;
        _cleanup_free_ char *text = NULL;
        size_t n_components = 0;
        int r;

        *ret = (struct kos_oci_push_result){0};
        if (!kos_name_is_valid(name))
                return kos_say_why(-EBADMSG, ret->error, sizeof ret->error, "\"%.80s\" is not a manifest name", name);
        kos_manifest_file_names(name, json_path, sig_path);
        r = ring ? kos_manifest_load_verified_at(ring, img->manifests_fd, json_path, sig_path, "manifests/", &m)
                 : kos_manifest_load_unverified_at(img->manifests_fd, json_path, sig_path, "manifests/", &m);
        if (r < 0) {
                if (r == -EBADMSG || m.reason == KOS_REASON_MANIFEST_MISSING)
                        r = kos_say_why(-EBADMSG, ret->error, sizeof ret->error, "%s: %s", kos_reason_to_string(m.reason), m.detail);
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
        /* Components first, the manifest last: a registry never holds an
         * artifact whose blobs are not all there. */
        if ((r = push_blob(c, &empty, ret)) < 0 || (r = push_blob(c, &json_blob, ret)) < 0 || (r = push_blob(c, &sig_blob, ret)) < 0)
                goto out;
        for (size_t i = 0; i < n_components; i++) {
                role_ptrs[i] = roles[i];
                if ((r = push_blob(c, &components[i], ret)) < 0)
                        goto out;
        }
        text = artifact_manifest(&m, &json_blob, &sig_blob, components, n_components, role_ptrs);
        r = text ? kos_oci_manifest_put(c, KOS_OCI_IMAGE_MANIFEST_TYPE, text, strlen(text)) : -ENOMEM;
out:
        for (size_t i = 0; i < n_components; i++)
                kos_closep(&components[i].fd);
        kos_loaded_manifest_done(&m);
        return r;
}

/* --- Pull ----------------------------------------------------------------- */

struct pull {
        struct kos_oci_client *client;
        const struct kos_oci_pull_options *options;
        struct kos_bundle_result *result;
        struct kos_oci_artifact artifact;
        uint64_t cut_left; /* test_cut_after: bytes left before the cut */
        /* one component download */
        struct kos_component_sink *sink;
        uint64_t received; /* bytes of it that came in this pull */
};

static void note(const struct pull *p, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void note(const struct pull *p, const char *format, ...) {
        char line[512];
        va_list ap;

        if (!p->options->note)
                return;
        va_start(ap, format);
        vsnprintf(line, sizeof line, format, ap);
        va_end(ap);
        p->options->note(line, p->options->note_userdata);
}

static int parse_layer(struct kos_oci_artifact *a, json_t *j, size_t index, char *error, size_t size) {
        struct kos_oci_layer *l = &a->layers[a->n_layers];
        const char *media_type = json_string_value(json_object_get(j, "mediaType"));
        const char *digest = json_string_value(json_object_get(j, "digest"));
        json_t *bytes = json_object_get(j, "size");
        uint8_t raw[KOS_SHA256_LEN];

        if (!media_type || !digest || strlen(digest) != KOS_OCI_DIGEST_LEN || strncmp(digest, "sha256:", 7) != 0 ||
            kos_hex_decode(digest + 7, KOS_SHA256_HEX_LEN, raw, sizeof raw) < 0 || !json_is_integer(bytes) ||
            json_integer_value(bytes) < 0 || (uint64_t)json_integer_value(bytes) > KOS_BLOB_SIZE_MAX)
                return kos_say_why(-EBADMSG, error, size, "not a KOS artifact: layer %zu has no mediaType, sha256 digest or size", index);
        /* Only the media types this reader knows are kept by name; others are "other". */
        l->kind = strcmp(media_type, KOS_OCI_MANIFEST_LAYER_TYPE) == 0    ? KOS_OCI_LAYER_MANIFEST
                  : strcmp(media_type, KOS_OCI_SIGNATURE_LAYER_TYPE) == 0 ? KOS_OCI_LAYER_SIGNATURE
                  : strcmp(media_type, KOS_OCI_COMPONENT_LAYER_TYPE) == 0 ? KOS_OCI_LAYER_COMPONENT
                                                                           : KOS_OCI_LAYER_OTHER;
        memcpy(l->digest, digest, sizeof l->digest);
        l->size = (uint64_t)json_integer_value(bytes);
        if (l->kind == KOS_OCI_LAYER_MANIFEST || l->kind == KOS_OCI_LAYER_SIGNATURE) {
                int *slot = l->kind == KOS_OCI_LAYER_MANIFEST ? &a->manifest : &a->signature;
                if (*slot >= 0)
                        return kos_say_why(-EBADMSG, error, size, "not a KOS artifact: two layers of type %s", media_type);
                *slot = (int)a->n_layers;
        }
        a->n_layers++;
        return 0;
}

static int parse_artifact(json_t *root, struct kos_oci_artifact *a, char *error, size_t size) {
        json_t *layers = json_object_get(root, "layers"), *j;
        const char *media_type = json_string_value(json_object_get(root, "mediaType"));
        const char *artifact_type = json_string_value(json_object_get(root, "artifactType"));
        size_t i;
        int r;

        if (!json_is_object(root))
                return kos_say_why(-EBADMSG, error, size, "the registry's manifest is not a JSON object");
        if (json_integer_value(json_object_get(root, "schemaVersion")) != 2 ||
            (media_type && strcmp(media_type, KOS_OCI_IMAGE_MANIFEST_TYPE) != 0))
                return kos_say_why(-EBADMSG, error, size, "not an OCI image manifest (schemaVersion 2, %s)", KOS_OCI_IMAGE_MANIFEST_TYPE);
        if (!artifact_type || strcmp(artifact_type, KOS_OCI_ARTIFACT_TYPE) != 0)
                return kos_say_why(-EBADMSG, error, size, "not a KOS artifact: artifactType is %.80s, not %s",
                              artifact_type ? artifact_type : "missing", KOS_OCI_ARTIFACT_TYPE);
        if (!json_is_array(layers) || json_array_size(layers) > ELEMENTSOF(a->layers))
                return kos_say_why(-EBADMSG, error, size, "not a KOS artifact: no layers, or more than %zu", ELEMENTSOF(a->layers));
        json_array_foreach(layers, i, j)
                if ((r = parse_layer(a, j, i, error, size)) < 0)
                        return r;
        if (a->manifest < 0 || a->signature < 0)
                return kos_say_why(-EBADMSG, error, size, "not a KOS artifact: no %s layer",
                              a->manifest >= 0 ? KOS_OCI_SIGNATURE_LAYER_TYPE : KOS_OCI_MANIFEST_LAYER_TYPE);
        return 0;
}

int kos_oci_artifact_parse(const char *untrusted, size_t len, struct kos_oci_artifact *ret, char *error, size_t error_size) {
        *ret = (struct kos_oci_artifact){.manifest = -1, .signature = -1};
        if (len > KOS_OCI_IMAGE_MANIFEST_MAX)
                return kos_say_why(-EBADMSG, error, error_size, "the registry's manifest is over %u bytes", KOS_OCI_IMAGE_MANIFEST_MAX);
        json_t *root = json_loadb(untrusted, len, JSON_REJECT_DUPLICATES, NULL);
        int r = parse_artifact(root, ret, error, error_size);
        json_decref(root);
        return r;
}

/* A small layer (the KOS manifest, its signature), capped before and while
 * it is fetched, and checked against its digest. */
static int fetch_small_layer(struct pull *p, const struct kos_oci_layer *l, size_t cap, char **ret, size_t *ret_len) {
        uint8_t want[KOS_SHA256_LEN], got[KOS_SHA256_LEN];
        int r;

        if (l->size > cap)
                return kos_say_why(-EBADMSG, p->result->error, sizeof p->result->error, "layer %s of %llu bytes is over its cap of %zu bytes",
                              l->digest, (unsigned long long)l->size, cap);
        if ((r = kos_oci_blob_get_small(p->client, l->digest, cap, ret, ret_len)) < 0)
                return r;
        if (kos_hex_decode(l->digest + 7, KOS_SHA256_HEX_LEN, want, sizeof want) < 0 || kos_sha256(*ret, *ret_len, got) < 0 ||
            !kos_digest_equal(want, got) || *ret_len != l->size) {
                free(TAKE_PTR(*ret));
                return kos_say_why(-EBADMSG, p->result->error, sizeof p->result->error, "blob-digest-mismatch: a layer does not hash to %s",
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

/* kos_manifest_install()'s source: called only once the KOS manifest has
 * authenticated and passed the rollback floor, for a blob the ImageFS lacks.
 * A connection that breaks after bytes came is asked again for the rest
 * (a Range request), at most KOS_OCI_FETCH_ATTEMPTS times in all; a
 * transfer too slow or past its bound is not. */
static int fetch_component(void *userdata, const struct kos_blob *blob, const char *label, uint64_t offset,
                           struct kos_component_sink *sink) {
        struct pull *p = userdata;
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
                snprintf(p->result->error, sizeof p->result->error, "the transfer was cut (KOS_OCI_TEST_CUT_AFTER)");
        return r;
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
        *p = (struct pull){.client = c, .options = options, .result = result};
        if ((r = kos_oci_manifest_get(c, KOS_OCI_IMAGE_MANIFEST_TYPE, KOS_OCI_IMAGE_MANIFEST_MAX, &text, &text_len)) < 0)
                goto out;
        struct kos_oci_artifact *a = &p->artifact;
        if ((r = kos_oci_artifact_parse(text, text_len, a, result->error, sizeof result->error)) < 0 ||
            (r = fetch_small_layer(p, &a->layers[a->manifest], KOS_MANIFEST_MAX, &untrusted_json, &json_len)) < 0 ||
            (r = fetch_small_layer(p, &a->layers[a->signature], KOS_SIGNATURE_FILE_MAX, &untrusted_sig, &sig_len)) < 0)
                goto out;
        struct kos_component_source source = {.fetch = fetch_component, .userdata = p, .resumable = true};
        r = kos_manifest_install(img, ring, untrusted_json, json_len, untrusted_sig, sig_len, &source, &options->install, result);
out:
        free(p);
        return r;
}
