/* SPDX-License-Identifier: MIT */
#include "keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "util.h"
#include "layout.h"


static int initrd_lookup(const char *key_id, uint8_t **ret, size_t *ret_len) {
        char *data = NULL;
        size_t len;

        if (!kos_name_is_valid(key_id))
                return -EINVAL;
        _cleanup_close_ int dirfd = open(KOS_INITRD_KEY_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return errno == ENOENT ? -ENOKEY : -errno;
        int r = kos_read_file_at(dirfd, key_id, KOS_KEY_MAX, &data, &len);
        if (r == -ENOENT)
                return -ENOKEY;
        if (r < 0)
                return r;
        *ret = (uint8_t *)data;
        *ret_len = len;
        return 0;
}

const struct kos_key_provider kos_key_provider_initrd = {
        .name = "initrd key store (" KOS_INITRD_KEY_DIR ", development)",
        .lookup = initrd_lookup,
};

int kos_key_lookup(const struct kos_key_provider *const *providers, const char *key_id, uint8_t **ret, size_t *ret_len,
                   const char **ret_provider) {
        int r = -ENOKEY;

        for (; *providers; providers++) {
                r = (*providers)->lookup(key_id, ret, ret_len);
                if (r != -ENOKEY) {
                        *ret_provider = (*providers)->name;
                        return r;
                }
        }
        return r;
}
