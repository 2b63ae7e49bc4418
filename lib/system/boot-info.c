/* SPDX-License-Identifier: MIT */
#include "boot-info.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool uuid_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= KOS_UUID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(s[i] == '-' || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= 'A' && s[i] <= 'Z')))
                        return false;
        return true;
}

/* An absolute path under /dev/ with no ".." component: what the System
 * Kernel writes (/dev/mapper/kos-<name>-verity). The device itself is
 * checked again where it is opened (lib/device/scrub.h). */
static bool device_path_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n >= KOS_BOOT_INFO_DEVICE_MAX || strncmp(s, "/dev/", 5) != 0 || n == 5)
                return false;
        for (const char *p = s; (p = strstr(p, "..")); p += 2)
                if (p[-1] == '/' && (p[2] == '/' || p[2] == '\0'))
                        return false;
        return true;
}

/* A word: [a-z0-9-], as "luks2". */
static bool word_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= KOS_BOOT_INFO_WORD_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return true;
}

static bool component_is_valid(const struct kos_boot_info_component *c) {
        return kos_name_is_valid(c->name) && kos_component_type_to_string(c->type) &&
               kos_verify_to_string(c->verify) && device_path_is_valid(c->device) &&
               (c->verify != KOS_VERIFY_HASH_TREE || c->verity);
}

/* What the parser accepts, checked before anything is written. */
static bool info_is_valid(const struct kos_boot_info *info) {
        if (!kos_name_is_valid(info->name) || !uuid_is_valid(info->imagefs_uuid) ||
            !uuid_is_valid(info->imagefs_partuuid) || info->n_components > KOS_MANIFEST_MAX_COMPONENTS ||
            !word_is_valid(info->rw) || !word_is_valid(info->data_state) ||
            (info->data_encryption[0] && !word_is_valid(info->data_encryption)) || info->version > INT64_MAX)
                return false;
        for (size_t i = 0; i < info->n_components; i++)
                if (!component_is_valid(&info->components[i]))
                        return false;
        return true;
}

static json_t *component_to_json(const struct kos_boot_info_component *c) {
        char hex[KOS_SHA256_HEX_LEN + 1];

        kos_hex_encode(c->sha256, KOS_SHA256_LEN, hex);
        return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:f}", "name", c->name, "type",
                         kos_component_type_to_string(c->type), "sha256", hex, "device", c->device, "verity",
                         c->verity, "encrypted", c->encrypted, "verify", kos_verify_to_string(c->verify),
                         "mount_seconds", c->mount_seconds);
}

static json_t *info_to_json(const struct kos_boot_info *info) {
        char id[KOS_SHA256_HEX_LEN + 1];
        const struct kos_boot_info_timings *t = &info->timings;
        json_t *components = json_array();

        for (size_t i = 0; components && i < info->n_components; i++)
                if (json_array_append_new(components, component_to_json(&info->components[i])) < 0) {
                        json_decref(components);
                        return NULL;
                }
        if (!components)
                return NULL;
        kos_hex_encode(info->id, KOS_SHA256_LEN, id);
        return json_pack("{s:{s:s, s:s, s:I}, s:{s:s, s:s, s:s}, s:o, s:s, s:{s:s, s:s, s:s, s:s}, "
                         "s:{s:f, s:f, s:f, s:f, s:f, s:f}}",
                         "manifest", "name", info->name, "id", id, "version", (json_int_t)info->version, "imagefs",
                         "uuid", info->imagefs_uuid, "partuuid", info->imagefs_partuuid, "device",
                         info->imagefs_device, "components", components, "rw", info->rw, "data", "state",
                         info->data_state, "device", info->data_device, "encryption", info->data_encryption,
                         "reason", info->data_reason, "timings", "init_start", t->init_start,
                         "modules_loaded", t->modules_loaded, "imagefs_mounted", t->imagefs_mounted,
                         "manifest_verified", t->manifest_verified, "layers_mounted", t->layers_mounted,
                         "root_assembled", t->root_assembled);
}

int kos_boot_info_write(const char *path, const struct kos_boot_info *info) {
        if (!info_is_valid(info))
                return -EINVAL;
        json_t *root = info_to_json(info);
        if (!root)
                return -ENOMEM;
        char *text = json_dumps(root, JSON_INDENT(2));
        json_decref(root);
        if (!text)
                return -ENOMEM;
        int r = kos_write_file_atomic_at(AT_FDCWD, path, text, strlen(text), 0644);
        free(text);
        return r;
}

int kos_boot_info_read(const char *path, struct kos_boot_info *ret) {
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r;

        memset(ret, 0, sizeof *ret);
        if ((r = kos_read_file_at(AT_FDCWD, path, KOS_BOOT_INFO_MAX, &data, &len)) < 0)
                return r;
        return kos_boot_info_parse(data, len, ret);
}

static int copy_string(char *dst, size_t size, const char *src) {
        return (size_t)snprintf(dst, size, "%s", src) < size ? 0 : -EBADMSG;
}

static int parse_component(json_t *o, struct kos_boot_info_component *ret) {
        const char *name, *type, *sha256, *device, *verify;
        int verity, encrypted, t;
        double seconds;

        if (json_unpack(o, "{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:F}", "name", &name, "type", &type, "sha256", &sha256,
                        "device", &device, "verity", &verity, "encrypted", &encrypted, "verify", &verify,
                        "mount_seconds", &seconds) < 0 ||
            (t = kos_component_type_from_string(type)) < 0 ||
            kos_hex_decode(sha256, strlen(sha256), ret->sha256, KOS_SHA256_LEN) < 0 ||
            copy_string(ret->name, sizeof ret->name, name) < 0 ||
            copy_string(ret->device, sizeof ret->device, device) < 0)
                return -EBADMSG;
        ret->type = (enum kos_component_type)t;
        ret->verity = verity;
        ret->encrypted = encrypted;
        ret->mount_seconds = seconds;
        if (strcmp(verify, kos_verify_to_string(KOS_VERIFY_HASH_TREE)) == 0)
                ret->verify = KOS_VERIFY_HASH_TREE;
        else if (strcmp(verify, kos_verify_to_string(KOS_VERIFY_SHA256)) == 0)
                ret->verify = KOS_VERIFY_SHA256;
        else
                return -EBADMSG;
        return component_is_valid(ret) ? 0 : -EBADMSG;
}

/* components[], in order, and the hash-tree view of them. */
static int parse_components(json_t *components, struct kos_boot_info *ret) {
        size_t i;
        json_t *c;

        if (!json_is_array(components) || json_array_size(components) > KOS_MANIFEST_MAX_COMPONENTS)
                return -EBADMSG;
        json_array_foreach(components, i, c) {
                struct kos_boot_info_component *comp = &ret->components[ret->n_components++];
                if (parse_component(c, comp) < 0)
                        return -EBADMSG;
                if (comp->verify != KOS_VERIFY_HASH_TREE)
                        continue;
                struct kos_boot_info_hash_tree *t = &ret->hash_tree[ret->n_hash_tree++];
                _Static_assert(sizeof t->component == sizeof comp->name && sizeof t->device == sizeof comp->device,
                               "the hash-tree view copies whole fields");
                memcpy(t->component, comp->name, sizeof t->component);
                memcpy(t->device, comp->device, sizeof t->device);
        }
        return 0;
}

static int parse_root(json_t *o, struct kos_boot_info *ret) {
        const char *name, *id, *uuid, *partuuid, *device, *rw, *data_state, *data_device, *encryption = "",
                   *reason = "";
        struct kos_boot_info_timings *t = &ret->timings;
        json_t *components;
        json_int_t version;

        if (json_unpack(o, "{s:{s:s, s:s, s:I}, s:{s:s, s:s, s:s}, s:o, s:s, s:{s:s, s:s, s?s, s?s}, s:{s:F, s:F, s:F, s:F, s:F, s:F}}",
                        "manifest", "name", &name, "id", &id, "version", &version, "imagefs", "uuid", &uuid,
                        "partuuid", &partuuid, "device", &device, "components", &components, "rw", &rw, "data",
                        "state", &data_state, "device", &data_device, "encryption", &encryption, "reason", &reason,
                        "timings", "init_start", &t->init_start,
                        "modules_loaded", &t->modules_loaded, "imagefs_mounted", &t->imagefs_mounted,
                        "manifest_verified", &t->manifest_verified, "layers_mounted", &t->layers_mounted,
                        "root_assembled", &t->root_assembled) < 0 ||
            version < 0 || kos_hex_decode(id, strlen(id), ret->id, KOS_SHA256_LEN) < 0 ||
            copy_string(ret->name, sizeof ret->name, name) < 0 ||
            copy_string(ret->imagefs_uuid, sizeof ret->imagefs_uuid, uuid) < 0 ||
            copy_string(ret->imagefs_partuuid, sizeof ret->imagefs_partuuid, partuuid) < 0 ||
            copy_string(ret->imagefs_device, sizeof ret->imagefs_device, device) < 0 ||
            copy_string(ret->rw, sizeof ret->rw, rw) < 0 || copy_string(ret->data_state, sizeof ret->data_state, data_state) < 0 ||
            copy_string(ret->data_device, sizeof ret->data_device, data_device) < 0 ||
            copy_string(ret->data_encryption, sizeof ret->data_encryption, encryption) < 0 ||
            copy_string(ret->data_reason, sizeof ret->data_reason, reason) < 0 ||
            parse_components(components, ret) < 0)
                return -EBADMSG;
        ret->version = (uint64_t)version;
        return info_is_valid(ret) ? 0 : -EBADMSG;
}

int kos_boot_info_parse(const char *data, size_t len, struct kos_boot_info *ret) {
        json_error_t error;

        memset(ret, 0, sizeof *ret);
        if (len > KOS_BOOT_INFO_MAX)
                return -EFBIG;
        json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &error);
        int r = o ? parse_root(o, ret) : -EBADMSG;
        json_decref(o);
        if (r < 0)
                memset(ret, 0, sizeof *ret);
        return r;
}
