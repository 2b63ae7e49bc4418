/* SPDX-License-Identifier: MIT */
#include "boot-info.h"

#include <errno.h>
#include <fcntl.h>
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
 * checked again where it is opened (lib/scrub.h). */
static bool device_path_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n >= KOS_BOOT_INFO_DEVICE_MAX || strncmp(s, "/dev/", 5) != 0 || n == 5)
                return false;
        for (const char *p = s; (p = strstr(p, "..")); p += 2)
                if (p[-1] == '/' && (p[2] == '/' || p[2] == '\0'))
                        return false;
        return true;
}

/* components[]: the hash-tree ones, in order. Other members and other
 * components are information only and are not checked. */
static int parse_hash_tree_components(json_t *components, struct kos_boot_info *ret) {
        size_t i;
        json_t *c;

        if (!components)
                return 0;
        if (!json_is_array(components) || json_array_size(components) > KOS_MANIFEST_MAX_COMPONENTS)
                return -EBADMSG;
        json_array_foreach(components, i, c) {
                const char *name, *device, *verify = NULL;
                int verity = 0;
                if (json_unpack(c, "{s?s}", "verify", &verify) < 0)
                        return -EBADMSG;
                if (!verify || strcmp(verify, "hash-tree") != 0)
                        continue;
                if (json_unpack(c, "{s:s, s:s, s:b}", "name", &name, "device", &device, "verity", &verity) < 0 ||
                    !verity || !kos_name_is_valid(name) || !device_path_is_valid(device))
                        return -EBADMSG;
                struct kos_boot_info_hash_tree *t = &ret->hash_tree[ret->n_hash_tree++];
                snprintf(t->component, sizeof t->component, "%s", name);
                snprintf(t->device, sizeof t->device, "%s", device);
        }
        return 0;
}

int kos_boot_info_write(const char *path, const struct kos_boot_info *info, json_t *details) {
        char id[KOS_SHA256_HEX_LEN + 1];
        const char *key;
        json_t *value;

        kos_hex_encode(info->id, KOS_SHA256_LEN, id);
        json_t *root = json_pack("{s:{s:s, s:s, s:I}, s:{s:s, s:s, s:s}}", "manifest", "name", info->name, "id", id,
                                 "version", (json_int_t)info->version, "imagefs", "uuid", info->imagefs_uuid,
                                 "partuuid", info->imagefs_partuuid, "device", info->imagefs_device);
        if (!root) {
                json_decref(details);
                return -ENOMEM;
        }
        if (details) {
                /* The contract's own members win over a detail of the same name. */
                json_object_foreach(details, key, value) {
                        if (!json_object_get(root, key))
                                json_object_set(root, key, value);
                }
        }
        json_decref(details);
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

int kos_boot_info_parse(const char *data, size_t len, struct kos_boot_info *ret) {
        const char *name, *id, *uuid, *partuuid, *device = "";
        json_int_t version;
        json_error_t error;

        memset(ret, 0, sizeof *ret);
        if (len > KOS_BOOT_INFO_MAX)
                return -EFBIG;
        json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &error);
        if (!o || json_unpack(o, "{s:{s:s, s:s, s:I}, s:{s:s, s:s, s?s}}", "manifest", "name", &name, "id", &id,
                              "version", &version, "imagefs", "uuid", &uuid, "partuuid", &partuuid, "device",
                              &device) < 0 ||
            version < 0 || !kos_name_is_valid(name) || kos_hex_decode(id, strlen(id), ret->id, KOS_SHA256_LEN) < 0 ||
            !uuid_is_valid(uuid) || !uuid_is_valid(partuuid) || strlen(device) >= sizeof ret->imagefs_device ||
            parse_hash_tree_components(json_object_get(o, "components"), ret) < 0) {
                memset(ret, 0, sizeof *ret);
                json_decref(o);
                return -EBADMSG;
        }
        snprintf(ret->name, sizeof ret->name, "%s", name);
        snprintf(ret->imagefs_uuid, sizeof ret->imagefs_uuid, "%s", uuid);
        snprintf(ret->imagefs_partuuid, sizeof ret->imagefs_partuuid, "%s", partuuid);
        snprintf(ret->imagefs_device, sizeof ret->imagefs_device, "%s", device);
        ret->version = (uint64_t)version;
        json_decref(o);
        return 0;
}
