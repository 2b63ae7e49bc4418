/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for /run/kos/boot.json's parser (lib/system/boot-info.c), which
 * gives Node Manager the devices it scrubs: whatever it accepts has a valid
 * manifest name, and every hash-tree device it names is a bounded path
 * under /dev/ with no ".." component. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boot-info.h"

static bool has_dot_dot_component(const char *path) {
        for (const char *p = strstr(path, "/.."); p; p = strstr(p + 1, "/.."))
                if (p[3] == '/' || p[3] == '\0')
                        return true;
        return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct kos_boot_info info; /* large: not on the stack */

        if (kos_boot_info_parse((const char *)data, size, &info) < 0)
                return 0;
        if (!kos_name_is_valid(info.name) || info.n_hash_tree > KOS_MANIFEST_MAX_COMPONENTS)
                abort();
        for (size_t i = 0; i < info.n_hash_tree; i++) {
                const char *device = info.hash_tree[i].device;
                if (!kos_name_is_valid(info.hash_tree[i].component) || strncmp(device, "/dev/", 5) != 0 ||
                    strlen(device) >= KOS_BOOT_INFO_DEVICE_MAX || has_dot_dot_component(device))
                        abort();
        }
        return 0;
}
