/* SPDX-License-Identifier: MIT */
#include "manifest.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "verity.h"

static const char *const component_type_names[_KOS_COMPONENT_TYPE_MAX] = {
        [KOS_COMPONENT_SQUASHFS] = "squashfs",
        [KOS_COMPONENT_EROFS] = "erofs",
        [KOS_COMPONENT_EXT4] = "ext4",
};

const char *kos_component_type_to_string(enum kos_component_type t) {
        return t < _KOS_COMPONENT_TYPE_MAX ? component_type_names[t] : NULL;
}

int kos_component_type_from_string(const char *s) {
        for (int i = 0; i < _KOS_COMPONENT_TYPE_MAX; i++)
                if (strcmp(s, component_type_names[i]) == 0)
                        return i;
        return -EINVAL;
}

static const char *const verify_names[_KOS_VERIFY_MAX] = {
        [KOS_VERIFY_SHA256] = "sha256",
        [KOS_VERIFY_HASH_TREE] = "hash-tree",
};

const char *kos_verify_to_string(enum kos_verify v) {
        return v < _KOS_VERIFY_MAX ? verify_names[v] : NULL;
}

/* Every object has a fixed set of keys; anything else is rejected, so a
 * manifest never carries a field that this code silently ignores. */
static int check_keys(json_t *obj, const char *const *allowed, const char *where, struct kos_error *e) {
        const char *key;
        json_t *value;

        json_object_foreach(obj, key, value) {
                bool known = false;
                for (const char *const *a = allowed; *a; a++)
                        known = known || strcmp(key, *a) == 0;
                if (!known)
                        return kos_error_set(e, -EBADMSG, "%s: unknown key \"%s\"", where, key);
        }
        return 0;
}

static int get_string(json_t *obj, const char *key, const char *where, const char **ret, struct kos_error *e) {
        json_t *v = json_object_get(obj, key);

        if (!v)
                return kos_error_set(e, -EBADMSG, "%s: missing \"%s\"", where, key);
        if (!json_is_string(v))
                return kos_error_set(e, -EBADMSG, "%s: \"%s\" must be a string", where, key);
        *ret = json_string_value(v);
        return 0;
}

static int get_uint(json_t *obj, const char *key, const char *where, uint64_t max, uint64_t *ret,
                    struct kos_error *e) {
        json_t *v = json_object_get(obj, key);

        if (!v)
                return kos_error_set(e, -EBADMSG, "%s: missing \"%s\"", where, key);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
                return kos_error_set(e, -EBADMSG, "%s: \"%s\" must be an integer from 0 to %llu", where, key,
                                    (unsigned long long)max);
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

/* An optional integer key: absent is 0. */
static int get_optional_uint(json_t *obj, const char *key, const char *where, uint64_t max, uint64_t *ret,
                             struct kos_error *e) {
        *ret = 0;
        return json_object_get(obj, key) ? get_uint(obj, key, where, max, ret, e) : 0;
}

static int get_name(json_t *obj, const char *where, char ret[static KOS_NAME_MAX + 1], struct kos_error *e) {
        const char *s;
        int r = get_string(obj, "name", where, &s, e);

        if (r < 0)
                return r;
        if (!kos_name_is_valid(s))
                return kos_error_set(e, -EBADMSG, "%s: \"name\" must match [A-Za-z0-9._-]{1,64} and not be . or ..", where);
        strcpy(ret, s);
        return 0;
}

static int parse_blob(json_t *obj, const char *where, struct kos_blob *ret, struct kos_error *e) {
        const char *hex;
        int r;

        r = get_string(obj, "sha256", where, &hex, e);
        if (r < 0)
                return r;
        if (kos_hex_decode(hex, strlen(hex), ret->sha256, KOS_SHA256_LEN) < 0)
                return kos_error_set(e, -EBADMSG, "%s: \"sha256\" must be 64 lowercase hex digits", where);
        return get_uint(obj, "size", where, KOS_BLOB_SIZE_MAX, &ret->size, e);
}

static int parse_boot_file(json_t *root, const char *key, struct kos_blob *ret, struct kos_error *e) {
        static const char *const keys[] = {"sha256", "size", NULL};
        json_t *obj = json_object_get(root, key);

        if (!obj)
                return kos_error_set(e, -EBADMSG, "missing \"%s\"", key);
        if (!json_is_object(obj))
                return kos_error_set(e, -EBADMSG, "\"%s\" must be an object", key);
        int r = check_keys(obj, keys, key, e);
        return r < 0 ? r : parse_blob(obj, key, ret, e);
}

static int parse_encryption(json_t *obj, const char *where, struct kos_encryption *ret, struct kos_error *e) {
        static const char *const keys[] = {"type", "key", NULL};
        const char *type, *key;
        int r;

        if (!json_is_object(obj))
                return kos_error_set(e, -EBADMSG, "%s: \"encryption\" must be an object", where);
        if ((r = check_keys(obj, keys, where, e)) < 0 || (r = get_string(obj, "type", where, &type, e)) < 0 ||
            (r = get_string(obj, "key", where, &key, e)) < 0)
                return r;
        if (strcmp(type, "luks2") != 0)
                return kos_error_set(e, -EBADMSG, "%s: encryption \"type\" must be \"luks2\"", where);
        if (!kos_name_is_valid(key))
                return kos_error_set(e, -EBADMSG, "%s: encryption \"key\" must match [A-Za-z0-9._-]{1,64}", where);
        strcpy(ret->key, key);
        ret->enabled = true;
        return 0;
}

static int parse_verity(json_t *obj, const char *where, uint64_t size, struct kos_verity *ret, struct kos_error *e) {
        static const char *const keys[] = {"root_hash", "hash_offset", NULL};
        const char *hex;
        int r;

        if (!json_is_object(obj))
                return kos_error_set(e, -EBADMSG, "%s: \"verity\" must be an object", where);
        if ((r = check_keys(obj, keys, where, e)) < 0 || (r = get_string(obj, "root_hash", where, &hex, e)) < 0)
                return r;
        if (kos_hex_decode(hex, strlen(hex), ret->root_hash, KOS_SHA256_LEN) < 0)
                return kos_error_set(e, -EBADMSG, "%s: verity \"root_hash\" must be 64 lowercase hex digits", where);
        if ((r = get_uint(obj, "hash_offset", where, size, &ret->hash_offset, e)) < 0)
                return r;
        if (ret->hash_offset == 0 || ret->hash_offset % 4096 != 0)
                return kos_error_set(e, -EBADMSG, "%s: verity \"hash_offset\" must be a positive multiple of 4096 within the file", where);
        ret->enabled = true;
        return 0;
}

/* "verify": "hash-tree" trusts the data to dm-verity, so it needs verity;
 * the Boot Kernel cannot read a tree inside a LUKS2 container, so no
 * encryption; and the file must be exactly data, superblock and tree, so no
 * signed byte is left that nothing checks. */
static int parse_verify(json_t *obj, const char *where, struct kos_component *c, struct kos_error *e) {
        const char *value;
        uint64_t expected = 0;
        int r;

        c->verify = KOS_VERIFY_SHA256;
        if (!json_object_get(obj, "verify"))
                return 0;
        if ((r = get_string(obj, "verify", where, &value, e)) < 0)
                return r;
        if (strcmp(value, "sha256") == 0)
                return 0;
        if (strcmp(value, "hash-tree") != 0)
                return kos_error_set(e, -EBADMSG, "%s: \"verify\" must be \"sha256\" or \"hash-tree\"", where);
        if (!c->verity.enabled)
                return kos_error_set(e, -EBADMSG, "%s: \"verify\": \"hash-tree\" needs \"verity\" (the tree is what is checked)",
                                    where);
        if (c->encryption.enabled)
                return kos_error_set(e, -EBADMSG, "%s: \"verify\": \"hash-tree\" cannot be used with \"encryption\" (the Boot "
                                       "Kernel cannot read a tree inside LUKS2); use the default sha256", where);
        if (kos_verity_image_size(c->verity.hash_offset, &expected) < 0 || expected != c->blob.size)
                return kos_error_set(e, -EBADMSG, "%s: \"verify\": \"hash-tree\" needs \"size\" to be exactly the data, the "
                                       "superblock block and the dm-verity tree (%llu bytes for this hash_offset)",
                                    where, (unsigned long long)expected);
        c->verify = KOS_VERIFY_HASH_TREE;
        return 0;
}

static int parse_component(json_t *obj, size_t index, struct kos_component *ret, struct kos_error *e) {
        static const char *const keys[] = {"name", "type", "sha256", "size", "encryption", "verity", "verify", NULL};
        char where[64];
        const char *type;
        int r;

        snprintf(where, sizeof where, "components[%zu]", index);
        if (!json_is_object(obj))
                return kos_error_set(e, -EBADMSG, "%s must be an object", where);
        if ((r = check_keys(obj, keys, where, e)) < 0 || (r = get_name(obj, where, ret->name, e)) < 0 ||
            (r = get_string(obj, "type", where, &type, e)) < 0)
                return r;
        r = kos_component_type_from_string(type);
        if (r < 0)
                return kos_error_set(e, -EBADMSG, "%s: \"type\" must be \"squashfs\", \"erofs\" or \"ext4\"", where);
        ret->type = (enum kos_component_type)r;
        if ((r = parse_blob(obj, where, &ret->blob, e)) < 0)
                return r;
        json_t *v = json_object_get(obj, "encryption");
        if (v && (r = parse_encryption(v, where, &ret->encryption, e)) < 0)
                return r;
        v = json_object_get(obj, "verity");
        if (v && (r = parse_verity(v, where, ret->blob.size, &ret->verity, e)) < 0)
                return r;
        return parse_verify(obj, where, ret, e);
}

static int parse_components(json_t *root, struct kos_manifest *m, struct kos_error *e) {
        json_t *array = json_object_get(root, "components");
        int r;

        if (!array)
                return kos_error_set(e, -EBADMSG, "missing \"components\"");
        if (!json_is_array(array) || json_array_size(array) == 0 ||
            json_array_size(array) > KOS_MANIFEST_MAX_COMPONENTS)
                return kos_error_set(e, -EBADMSG, "\"components\" must be an array of 1 to %d components",
                                    KOS_MANIFEST_MAX_COMPONENTS);
        m->components = calloc(json_array_size(array), sizeof *m->components);
        if (!m->components)
                return -ENOMEM;
        for (size_t i = 0; i < json_array_size(array); i++) {
                r = parse_component(json_array_get(array, i), i, &m->components[i], e);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(m->components[j].name, m->components[i].name) == 0)
                                return kos_error_set(e, -EBADMSG, "components[%zu]: name \"%s\" is used twice", i,
                                                    m->components[i].name);
                m->n_components = i + 1;
        }
        return 0;
}

static int parse_cmdline(json_t *root, struct kos_manifest *m, struct kos_error *e) {
        const char *s;
        int r = get_string(root, "cmdline", "manifest", &s, e);

        if (r < 0)
                return r;
        if (strlen(s) > KOS_CMDLINE_MAX)
                return kos_error_set(e, -EBADMSG, "\"cmdline\" is longer than %d bytes", KOS_CMDLINE_MAX);
        for (const char *p = s; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return kos_error_set(e, -EBADMSG, "\"cmdline\" holds a control character");
        m->cmdline = strdup(s);
        return m->cmdline ? 0 : -ENOMEM;
}

/* Optional: a Boot Kernel UKI that travels with the release. */
static int parse_boot_kernel(json_t *root, struct kos_manifest *m, struct kos_error *e) {
        static const char *const keys[] = {"sha256", "size", "bk_security_version", NULL};
        json_t *obj = json_object_get(root, "boot_kernel");
        uint64_t v;
        int r;

        if (!obj)
                return 0;
        if (!json_is_object(obj))
                return kos_error_set(e, -EBADMSG, "\"boot_kernel\" must be an object");
        if ((r = check_keys(obj, keys, "boot_kernel", e)) < 0 || (r = parse_blob(obj, "boot_kernel", &m->boot_kernel.blob, e)) < 0 ||
            (r = get_uint(obj, "bk_security_version", "boot_kernel", UINT32_MAX, &v, e)) < 0)
                return r;
        if (m->boot_kernel.blob.size == 0)
                return kos_error_set(e, -EBADMSG, "boot_kernel: \"size\" must not be 0");
        m->boot_kernel.security_version = (uint32_t)v;
        m->boot_kernel.present = true;
        return 0;
}

/* Optional: a dbx update that travels with the release. */
static int parse_dbx_update(json_t *root, struct kos_manifest *m, struct kos_error *e) {
        static const char *const keys[] = {"sha256", "size", NULL};
        json_t *obj = json_object_get(root, "dbx_update");
        int r;

        if (!obj)
                return 0;
        if (!json_is_object(obj))
                return kos_error_set(e, -EBADMSG, "\"dbx_update\" must be an object");
        if ((r = check_keys(obj, keys, "dbx_update", e)) < 0 || (r = parse_blob(obj, "dbx_update", &m->dbx_update.blob, e)) < 0)
                return r;
        if (m->dbx_update.blob.size == 0 || m->dbx_update.blob.size > KOS_DBX_UPDATE_SIZE_MAX)
                return kos_error_set(e, -EBADMSG, "dbx_update: \"size\" must be 1 to %d", KOS_DBX_UPDATE_SIZE_MAX);
        m->dbx_update.present = true;
        return 0;
}

static int parse_root(json_t *root, struct kos_manifest *m, struct kos_error *e) {
        static const char *const keys[] = {"format", "name", "version", "security_version", "kernel", "initrd",
                                           "cmdline", "components", "boot_kernel", "dbx_update", NULL};
        uint64_t format, security_version;
        int r;

        if (!json_is_object(root))
                return kos_error_set(e, -EBADMSG, "the manifest must be a JSON object");
        /* format first: an unknown format is reported as such, not as whatever
         * field it happens to have changed. */
        if ((r = get_uint(root, "format", "manifest", UINT32_MAX, &format, e)) < 0)
                return r;
        if (format != KOS_MANIFEST_FORMAT)
                return kos_error_set(e, -EBADMSG, "unknown \"format\" %llu (this build reads format %d)",
                                    (unsigned long long)format, KOS_MANIFEST_FORMAT);
        m->format = (unsigned)format;
        if ((r = check_keys(root, keys, "manifest", e)) < 0 || (r = get_name(root, "manifest", m->name, e)) < 0 ||
            (r = get_uint(root, "version", "manifest", INT64_MAX, &m->version, e)) < 0 ||
            (r = get_optional_uint(root, "security_version", "manifest", UINT32_MAX, &security_version, e)) < 0 ||
            (r = parse_boot_file(root, "kernel", &m->kernel, e)) < 0 ||
            (r = parse_boot_file(root, "initrd", &m->initrd, e)) < 0 || (r = parse_cmdline(root, m, e)) < 0)
                return r;
        m->security_version = (uint32_t)security_version;
        if ((r = parse_components(root, m, e)) < 0)
                return r;
        if ((r = parse_boot_kernel(root, m, e)) < 0)
                return r;
        return parse_dbx_update(root, m, e);
}

int kos_manifest_parse(const char *data, size_t len, struct kos_manifest **ret, struct kos_error *ret_error) {
        json_error_t jerr;
        int r;

        if (len > KOS_MANIFEST_MAX)
                return kos_error_set(ret_error, -EBADMSG, "manifest larger than %d bytes", KOS_MANIFEST_MAX);
        /* Jansson checks UTF-8, rejects NUL in strings, trailing data after the
         * value (no JSON_DISABLE_EOF_CHECK) and, with the flag, duplicate keys. */
        json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return kos_error_set(ret_error, -EBADMSG, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);

        struct kos_manifest *m = calloc(1, sizeof *m);
        if (!m) {
                json_decref(root);
                return -ENOMEM;
        }
        r = parse_root(root, m, ret_error);
        json_decref(root);
        if (r < 0) {
                kos_manifest_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

void kos_manifest_free(struct kos_manifest *m) {
        if (!m)
                return;
        free(m->cmdline);
        free(m->components);
        free(m);
}

static json_t *blob_to_json(const struct kos_blob *b) {
        char hex[KOS_SHA256_HEX_LEN + 1];

        kos_hex_encode(b->sha256, KOS_SHA256_LEN, hex);
        return json_pack("{s:s, s:I}", "sha256", hex, "size", (json_int_t)b->size);
}

static json_t *component_to_json(const struct kos_component *c) {
        char hex[KOS_SHA256_HEX_LEN + 1];

        kos_hex_encode(c->blob.sha256, KOS_SHA256_LEN, hex);
        json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "name", c->name, "type", kos_component_type_to_string(c->type),
                              "sha256", hex, "size", (json_int_t)c->blob.size);
        if (o && c->encryption.enabled)
                json_object_set_new(o, "encryption", json_pack("{s:s, s:s}", "type", "luks2", "key", c->encryption.key));
        if (o && c->verity.enabled) {
                kos_hex_encode(c->verity.root_hash, KOS_SHA256_LEN, hex);
                json_object_set_new(o, "verity", json_pack("{s:s, s:I}", "root_hash", hex, "hash_offset",
                                                           (json_int_t)c->verity.hash_offset));
        }
        /* Only when not the default: manifests without it keep their bytes. */
        if (o && c->verify != KOS_VERIFY_SHA256)
                json_object_set_new(o, "verify", json_string(kos_verify_to_string(c->verify)));
        return o;
}

int kos_manifest_format(const struct kos_manifest *m, char **ret_json, size_t *ret_len) {
        json_t *components = json_array();
        int r = -ENOMEM;

        for (size_t i = 0; components && i < m->n_components; i++)
                json_array_append_new(components, component_to_json(&m->components[i]));
        /* Built key by key: Jansson keeps insertion order, which is the
         * documented order; security_version only when not 0, so a manifest
         * without it is written exactly as before the key existed. */
        json_t *root = json_pack("{s:i, s:s, s:I}", "format", (int)m->format, "name", m->name, "version",
                                 (json_int_t)m->version);
        if (root && m->security_version != 0 &&
            json_object_set_new(root, "security_version", json_integer((json_int_t)m->security_version)) < 0)
                json_decref(TAKE_PTR(root));
        if (root && (json_object_set_new(root, "kernel", blob_to_json(&m->kernel)) < 0 ||
                     json_object_set_new(root, "initrd", blob_to_json(&m->initrd)) < 0 ||
                     json_object_set_new(root, "cmdline", json_string(m->cmdline ? m->cmdline : "")) < 0 ||
                     json_object_set_new(root, "components", TAKE_PTR(components)) < 0))
                json_decref(TAKE_PTR(root));
        /* Last, and only when there is one: other manifests keep their bytes. */
        if (root && m->boot_kernel.present) {
                json_t *bk = blob_to_json(&m->boot_kernel.blob);
                /* json_object_set_new() takes the value's reference, also when it fails. */
                if (!bk)
                        json_decref(TAKE_PTR(root));
                else if (json_object_set_new(bk, "bk_security_version",
                                             json_integer((json_int_t)m->boot_kernel.security_version)) < 0) {
                        json_decref(bk);
                        json_decref(TAKE_PTR(root));
                } else if (json_object_set_new(root, "boot_kernel", bk) < 0)
                        json_decref(TAKE_PTR(root));
        }
        if (root && m->dbx_update.present) {
                json_t *dbx = blob_to_json(&m->dbx_update.blob);
                if (!dbx || json_object_set_new(root, "dbx_update", dbx) < 0)
                        json_decref(TAKE_PTR(root));
        }
        json_decref(components); /* NULL unless the object above could not take it */
        if (root) {
                char *s = json_dumps(root, JSON_INDENT(2));
                if (s) {
                        size_t n = strlen(s);
                        char *with_newline = realloc(s, n + 2);
                        if (with_newline) {
                                memcpy(with_newline + n, "\n", 2);
                                *ret_json = with_newline;
                                *ret_len = n + 1;
                                r = 0;
                        } else
                                free(s);
                }
                json_decref(root);
        }
        return r;
}

bool kos_manifest_has_hash_tree(const struct kos_manifest *m) {
        for (size_t i = 0; i < m->n_components; i++)
                if (m->components[i].verify == KOS_VERIFY_HASH_TREE)
                        return true;
        return false;
}

size_t kos_manifest_blobs(const struct kos_manifest *m, const struct kos_blob **ret_blobs, const char **ret_labels,
                          size_t max) {
        size_t n = 0;

        if (n < max) {
                ret_blobs[n] = &m->kernel;
                ret_labels[n++] = "kernel";
        }
        if (n < max) {
                ret_blobs[n] = &m->initrd;
                ret_labels[n++] = "initrd";
        }
        for (size_t i = 0; i < m->n_components && n < max; i++) {
                ret_blobs[n] = &m->components[i].blob;
                ret_labels[n++] = m->components[i].name;
        }
        if (m->boot_kernel.present && n < max) {
                ret_blobs[n] = &m->boot_kernel.blob;
                ret_labels[n++] = "boot-kernel";
        }
        if (m->dbx_update.present && n < max) {
                ret_blobs[n] = &m->dbx_update.blob;
                ret_labels[n++] = "dbx-update";
        }
        return n;
}
