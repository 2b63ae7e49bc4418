/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the reader of a chunk index (what kos pull takes
 * from a registry to rebuild a component): it must never crash, and what it
 * accepts must hold its promises: every chunk 1 to KOS_CHUNK_MAX bytes, all
 * but the last at least KOS_CHUNK_MIN, every blob at most
 * KOS_CHUNK_BLOB_MAX, the lengths summing to the component's size. The
 * component's sha256 and size are taken from the input's own header, so
 * that accepted inputs are reachable. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct kos_chunk_index index;
        uint8_t sha[KOS_SHA256_LEN] = {0};
        uint64_t component_size = 0;
        struct kos_error error = KOS_ERROR_NULL;

        if (size >= KOS_CHUNK_INDEX_HEADER_LEN) {
                for (int i = 7; i >= 0; i--)
                        component_size = component_size << 8 | data[16 + i];
                memcpy(sha, data + 24, KOS_SHA256_LEN);
        }
        int r = kos_chunk_index_parse(data, size, sha, component_size, &index, &error);
        if (r == 0) {
                uint64_t total = 0;
                for (size_t i = 0; i < index.count; i++) {
                        const struct kos_chunk_entry *e = &index.entries[i];
                        if (e->length == 0 || e->length > KOS_CHUNK_MAX || (i + 1 < index.count && e->length < KOS_CHUNK_MIN) ||
                            e->blob_length == 0 || e->blob_length > KOS_CHUNK_BLOB_MAX)
                                abort();
                        total += e->length;
                }
                if (total != component_size || index.count > kos_chunk_index_max_count(component_size))
                        abort();
                kos_chunk_index_done(&index);
        } else if ((r != -EBADMSG && r != -ENOMEM) || !memchr(error.msg, '\0', sizeof error.msg))
                abort();
        return 0;
}
