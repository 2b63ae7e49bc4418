/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the dm-verity tree walk of selection ("verify":
 * "hash-tree"): any file and any signed hash_offset and root hash give a
 * verdict, never a read past the file, never a crash; a refusal says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"
#include "verity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t root_hash[KOS_SHA256_LEN];
        uint64_t read_bytes = UINT64_MAX;
        struct kos_error error;

        if (size < 1 + sizeof root_hash)
                return 0;
        /* 1 to 256 data blocks: trees of zero to two levels, and offsets
         * past the end of the file. */
        uint64_t hash_offset = ((uint64_t)data[0] + 1) * KOS_VERITY_BLOCK;
        memcpy(root_hash, data + 1, sizeof root_hash);
        data += 1 + sizeof root_hash;
        size -= 1 + sizeof root_hash;
        int fd = memfd_create("fuzz-verity-tree", MFD_CLOEXEC);
        if (fd < 0)
                return 0;
        /* The file: the input at the superblock's place, the data a hole. */
        if (ftruncate(fd, (off_t)hash_offset) < 0 || pwrite(fd, data, size, (off_t)hash_offset) != (ssize_t)size) {
                close(fd);
                return 0;
        }
        enum kos_verity_tree_result r = kos_verity_tree_verify(fd, hash_offset, root_hash, &read_bytes, &error);
        close(fd);
        if (read_bytes > hash_offset + size)
                abort();
        if (r != KOS_VERITY_TREE_MATCH && !error.msg[0])
                abort();
        return 0;
}
