/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the dm-verity superblock check: any 512 bytes, and
 * any hash offset, give either a salt of at most 256 bytes or a refusal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "verity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t salt[KOS_VERITY_MAX_SALT];
        size_t salt_size = SIZE_MAX;
        uint64_t hash_offset = 0;
        struct kos_error error = KOS_ERROR_NULL;

        if (size < sizeof hash_offset)
                return 0;
        memcpy(&hash_offset, data, sizeof hash_offset);
        int r = kos_verity_check_superblock(data + sizeof hash_offset, size - sizeof hash_offset, hash_offset, salt,
                                              &salt_size, &error);
        if (r == 0 && (salt_size > KOS_VERITY_MAX_SALT || hash_offset == 0 || hash_offset % KOS_VERITY_BLOCK))
                abort();
        if (r < 0 && !error.msg[0])
                abort();
        return 0;
}
