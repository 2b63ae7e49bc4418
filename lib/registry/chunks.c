/* SPDX-License-Identifier: MIT */
#include "chunks.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Normalized chunking, level 2: before KOS_CHUNK_AVG a cut needs 17 zero
 * bits (harder), after it 13 (easier), so lengths gather near the average.
 * The gear hash shifts left, so its top bits depend on the last 64 bytes:
 * the masks test top bits. */
#define MASK_HARD (~UINT64_C(0) << (64 - 17))
#define MASK_EASY (~UINT64_C(0) << (64 - 13))

/* The gear table: 256 values of splitmix64 from state 0 (Steele et al.,
 * "Fast splittable pseudorandom number generators", 2014). Part of the
 * format: tests/unit/test-chunks.c holds a golden vector of cut points. */
static uint64_t gear[256];
static bool gear_ready;

static void gear_init(void) {
        uint64_t state = 0;

        for (size_t i = 0; i < ELEMENTSOF(gear); i++) {
                uint64_t z = (state += UINT64_C(0x9e3779b97f4a7c15));
                z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
                z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
                gear[i] = z ^ (z >> 31);
        }
        gear_ready = true;
}

size_t kos_chunk_cut(const uint8_t *data, size_t len) {
        size_t normal = KOS_CHUNK_AVG, end = len < KOS_CHUNK_MAX ? len : KOS_CHUNK_MAX, i = KOS_CHUNK_MIN;
        uint64_t h = 0;

        if (!gear_ready)
                gear_init();
        if (len <= KOS_CHUNK_MIN)
                return len;
        if (normal > end)
                normal = end;
        for (; i < normal; i++) {
                h = (h << 1) + gear[data[i]];
                if (!(h & MASK_HARD))
                        return i + 1;
        }
        for (; i < end; i++) {
                h = (h << 1) + gear[data[i]];
                if (!(h & MASK_EASY))
                        return i + 1;
        }
        return end;
}

void kos_chunker_init(struct kos_chunker *c, int fd, uint8_t *buffer) {
        *c = (struct kos_chunker){.fd = fd, .buffer = buffer};
}

/* Tops the buffer up until it holds KOS_CHUNK_MAX bytes or the file ends. */
static int chunker_fill(struct kos_chunker *c) {
        if (c->end - c->start >= KOS_CHUNK_MAX || c->eof)
                return 0;
        if (c->start > 0) {
                memmove(c->buffer, c->buffer + c->start, c->end - c->start);
                c->end -= c->start;
                c->start = 0;
        }
        while (c->end < KOS_CHUNKER_BUFFER && !c->eof) {
                ssize_t n = read(c->fd, c->buffer + c->end, KOS_CHUNKER_BUFFER - c->end);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        c->eof = true;
                c->end += (size_t)n;
        }
        return 0;
}

int kos_chunker_next(struct kos_chunker *c, const uint8_t **ret_data, size_t *ret_len) {
        int r = chunker_fill(c);

        if (r < 0)
                return r;
        if (c->start == c->end)
                return 0;
        size_t n = kos_chunk_cut(c->buffer + c->start, c->end - c->start);
        *ret_data = c->buffer + c->start;
        *ret_len = n;
        c->start += n;
        return 1;
}

/* --- The index ------------------------------------------------------------ */

static uint32_t get_le32(const uint8_t *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p) {
        return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void put_le32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v) {
        put_le32(p, (uint32_t)v);
        put_le32(p + 4, (uint32_t)(v >> 32));
}

uint64_t kos_chunk_index_max_count(uint64_t size) {
        return size / KOS_CHUNK_MIN + 1;
}

uint64_t kos_chunk_index_max_bytes(uint64_t size) {
        return KOS_CHUNK_INDEX_HEADER_LEN + kos_chunk_index_max_count(size) * KOS_CHUNK_ENTRY_LEN;
}

static int parse_entries(const uint8_t *p, size_t count, uint64_t size, struct kos_chunk_entry *entries,
                         struct kos_error *ret_error) {
        uint64_t total = 0;

        for (size_t i = 0; i < count; i++, p += KOS_CHUNK_ENTRY_LEN) {
                struct kos_chunk_entry *e = &entries[i];
                memcpy(e->sha256, p, KOS_SHA256_LEN);
                memcpy(e->blob_sha256, p + 32, KOS_SHA256_LEN);
                e->length = get_le32(p + 64);
                e->blob_length = get_le32(p + 68);
                if (e->length == 0 || e->length > KOS_CHUNK_MAX || (i + 1 < count && e->length < KOS_CHUNK_MIN))
                        return kos_error_set(ret_error, -EBADMSG, "chunk %zu has %u bytes, not %u to %u", i, e->length,
                                           i + 1 < count ? KOS_CHUNK_MIN : 1, KOS_CHUNK_MAX);
                if (e->blob_length == 0 || e->blob_length > KOS_CHUNK_BLOB_MAX)
                        return kos_error_set(ret_error, -EBADMSG, "the blob of chunk %zu has %u bytes, not 1 to %u", i,
                                           e->blob_length, KOS_CHUNK_BLOB_MAX);
                total += e->length; /* count * KOS_CHUNK_MAX cannot overflow: count is capped by size */
        }
        if (total != size)
                return kos_error_set(ret_error, -EBADMSG, "the chunks add up to %llu bytes, not the component's %llu",
                                   (unsigned long long)total, (unsigned long long)size);
        return 0;
}

int kos_chunk_index_parse(const uint8_t *untrusted, size_t len, const uint8_t sha256[static KOS_SHA256_LEN], uint64_t size,
                          struct kos_chunk_index *ret, struct kos_error *ret_error) {
        *ret = (struct kos_chunk_index){0};
        if (len < KOS_CHUNK_INDEX_HEADER_LEN || memcmp(untrusted, KOS_CHUNK_INDEX_MAGIC, 8) != 0)
                return kos_error_set(ret_error, -EBADMSG, "not a chunk index (no %s header)", KOS_CHUNK_INDEX_MAGIC);
        uint32_t chunker = get_le32(untrusted + 8), count = get_le32(untrusted + 12);
        if (chunker != KOS_CHUNKER_FASTCDC_1)
                return kos_error_set(ret_error, -EBADMSG, "chunker %u is not known (%u is)", chunker, KOS_CHUNKER_FASTCDC_1);
        if (get_le64(untrusted + 16) != size || memcmp(untrusted + 24, sha256, KOS_SHA256_LEN) != 0)
                return kos_error_set(ret_error, -EBADMSG, "the index is of another component (size or sha256)");
        if (count == 0 || count > kos_chunk_index_max_count(size) ||
            len != KOS_CHUNK_INDEX_HEADER_LEN + (size_t)count * KOS_CHUNK_ENTRY_LEN)
                return kos_error_set(ret_error, -EBADMSG, "%u chunks in %zu bytes: not an index of %llu bytes", count, len,
                                   (unsigned long long)size);
        struct kos_chunk_entry *entries = calloc(count, sizeof *entries);
        if (!entries)
                return -ENOMEM;
        int r = parse_entries(untrusted + KOS_CHUNK_INDEX_HEADER_LEN, count, size, entries, ret_error);
        if (r < 0) {
                free(entries);
                return r;
        }
        memcpy(ret->sha256, sha256, KOS_SHA256_LEN);
        ret->size = size;
        ret->count = count;
        ret->entries = entries;
        return 0;
}

void kos_chunk_index_done(struct kos_chunk_index *index) {
        free(index->entries);
        *index = (struct kos_chunk_index){0};
}

int kos_chunk_index_encode(const struct kos_chunk_index *index, uint8_t **ret, size_t *ret_len) {
        if (index->count > UINT32_MAX)
                return -E2BIG;
        size_t len = KOS_CHUNK_INDEX_HEADER_LEN + index->count * KOS_CHUNK_ENTRY_LEN;
        uint8_t *b = malloc(len), *p;

        if (!b)
                return -ENOMEM;
        memcpy(b, KOS_CHUNK_INDEX_MAGIC, 8);
        put_le32(b + 8, KOS_CHUNKER_FASTCDC_1);
        put_le32(b + 12, (uint32_t)index->count);
        put_le64(b + 16, index->size);
        memcpy(b + 24, index->sha256, KOS_SHA256_LEN);
        p = b + KOS_CHUNK_INDEX_HEADER_LEN;
        for (size_t i = 0; i < index->count; i++, p += KOS_CHUNK_ENTRY_LEN) {
                memcpy(p, index->entries[i].sha256, KOS_SHA256_LEN);
                memcpy(p + 32, index->entries[i].blob_sha256, KOS_SHA256_LEN);
                put_le32(p + 64, index->entries[i].length);
                put_le32(p + 68, index->entries[i].blob_length);
        }
        *ret = b;
        *ret_len = len;
        return 0;
}
