/* SPDX-License-Identifier: MIT */
/* The content-defined chunker (FastCDC) and the chunk index of lib/registry/chunks.c. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunks.h"
#include "test.h"

#define BUFFER_LEN (1u << 20)

/* A reproducible byte stream (the LCG of the C standard's example rand()). */
static void fill(uint8_t *buf, size_t len, uint32_t seed) {
        uint32_t x = seed;
        for (size_t i = 0; i < len; i++) {
                x = x * 1103515245u + 12345u;
                buf[i] = (uint8_t)(x >> 16);
        }
}

static size_t cut_all(const uint8_t *buf, size_t len, size_t *cuts, size_t max) {
        size_t n = 0, pos = 0;
        while (pos < len && n < max) {
                pos += kos_chunk_cut(buf + pos, len - pos);
                cuts[n++] = pos;
        }
        return n;
}

/* The cut points are part of the format: a publisher and a device must agree. */
TEST(chunker_cut_points_match_the_golden_vector) {
        static const size_t golden[] = {37196, 41586, 25091, 39442, 35062, 35099, 33155, 9139, 15260, 35805};
        uint8_t *buf = malloc(BUFFER_LEN);
        size_t pos = 0;

        CHECK(buf);
        fill(buf, BUFFER_LEN, 1);
        for (size_t i = 0; i < ELEMENTSOF(golden); i++) {
                size_t n = kos_chunk_cut(buf + pos, BUFFER_LEN - pos);
                if (n != golden[i])
                        free(buf);
                CHECK(n == golden[i]);
                pos += n;
        }
        free(buf);
}

TEST(chunker_keeps_every_chunk_between_min_and_max_but_the_last) {
        uint8_t *buf = calloc(1, BUFFER_LEN); /* zeros: no natural cut point, every chunk is KOS_CHUNK_MAX */
        size_t cuts[64], n, prev = 0;
        int bad = 0;

        CHECK(buf);
        n = cut_all(buf, BUFFER_LEN, cuts, ELEMENTSOF(cuts));
        for (size_t i = 0; i < n; prev = cuts[i], i++)
                bad |= cuts[i] - prev != KOS_CHUNK_MAX;
        fill(buf, BUFFER_LEN, 7);
        n = cut_all(buf, BUFFER_LEN - 100, cuts, ELEMENTSOF(cuts));
        prev = 0;
        for (size_t i = 0; i < n; prev = cuts[i], i++)
                bad |= cuts[i] - prev > KOS_CHUNK_MAX || (i + 1 < n && cuts[i] - prev < KOS_CHUNK_MIN);
        bad |= cuts[n - 1] != BUFFER_LEN - 100;
        free(buf);
        CHECK(!bad);
        CHECK(kos_chunk_cut((const uint8_t *)"abc", 3) == 3);
}

/* What makes chunks worth having: bytes inserted near the start move the
 * cut points after them by the same amount, so the chunks after the first
 * few are the same. */
TEST(chunker_finds_the_same_chunks_after_an_insertion) {
        uint8_t *a = malloc(BUFFER_LEN), *b = malloc(BUFFER_LEN + 100);
        size_t ca[64], cb[64], na, nb, same = 0;

        CHECK(a && b);
        fill(a, BUFFER_LEN, 3);
        memcpy(b, a, 50000);
        memset(b + 50000, 'x', 100);
        memcpy(b + 50100, a + 50000, BUFFER_LEN - 50000);
        na = cut_all(a, BUFFER_LEN, ca, ELEMENTSOF(ca));
        nb = cut_all(b, BUFFER_LEN + 100, cb, ELEMENTSOF(cb));
        for (size_t i = 0; i < na; i++)
                for (size_t j = 0; j < nb; j++)
                        same += ca[i] > 60000 && cb[j] == ca[i] + 100;
        free(a);
        free(b);
        CHECK(na > 10 && same >= na - 3);
}

TEST(chunker_reads_a_file_in_the_same_chunks_as_a_buffer) {
        uint8_t *buf = malloc(BUFFER_LEN), *window = malloc(KOS_CHUNKER_BUFFER);
        char path[512];
        size_t cuts[64], n, i = 0, pos = 0;
        const uint8_t *data;
        size_t len;
        int fd, r, bad = 0;

        CHECK(buf && window);
        fill(buf, BUFFER_LEN, 5);
        snprintf(path, sizeof path, "%s/file", test_tmpdir());
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        CHECK(fd >= 0 && write(fd, buf, BUFFER_LEN) == BUFFER_LEN && lseek(fd, 0, SEEK_SET) == 0);
        n = cut_all(buf, BUFFER_LEN, cuts, ELEMENTSOF(cuts));
        struct kos_chunker c;
        kos_chunker_init(&c, fd, window);
        while ((r = kos_chunker_next(&c, &data, &len)) > 0) {
                bad |= i >= n || pos + len != cuts[i] || memcmp(data, buf + pos, len) != 0;
                pos += len;
                i++;
        }
        close(fd);
        free(buf);
        free(window);
        CHECK(r == 0 && !bad && i == n);
}

/* An index of three chunks (KOS_CHUNK_MIN, KOS_CHUNK_MIN, 100 bytes) of a component of sha256 0x11... */
static uint8_t *sample_index(size_t *ret_len, uint8_t sha[static KOS_SHA256_LEN]) {
        struct kos_chunk_entry entries[3] = {{.length = KOS_CHUNK_MIN, .blob_length = 10},
                                             {.length = KOS_CHUNK_MIN, .blob_length = 20},
                                             {.length = 100, .blob_length = 30}};
        struct kos_chunk_index index = {.size = 2 * KOS_CHUNK_MIN + 100, .count = 3, .entries = entries};
        uint8_t *bytes = NULL;

        memset(sha, 0x11, KOS_SHA256_LEN);
        memcpy(index.sha256, sha, KOS_SHA256_LEN);
        for (int i = 0; i < 3; i++)
                memset(entries[i].sha256, i + 1, KOS_SHA256_LEN);
        if (kos_chunk_index_encode(&index, &bytes, ret_len) < 0)
                return NULL;
        return bytes;
}

TEST(chunk_index_round_trips) {
        uint8_t sha[KOS_SHA256_LEN];
        struct kos_chunk_index index;
        size_t len;
        struct kos_error why = KOS_ERROR_NULL;
        uint8_t *bytes = sample_index(&len, sha);

        CHECK(bytes && len == KOS_CHUNK_INDEX_HEADER_LEN + 3 * KOS_CHUNK_ENTRY_LEN);
        int r = kos_chunk_index_parse(bytes, len, sha, 2 * KOS_CHUNK_MIN + 100, &index, &why);
        free(bytes);
        CHECK(r == 0 && index.count == 3 && index.entries[2].length == 100 && index.entries[1].blob_length == 20 &&
              index.entries[2].sha256[0] == 3);
        kos_chunk_index_done(&index);
}

/* parse_bad: the sample index changed by edit, which must be refused with a reason holding expect. */
static int parse_bad(void (*edit)(uint8_t *bytes, size_t *len, uint64_t *size), const char *expect) {
        uint8_t sha[KOS_SHA256_LEN];
        struct kos_chunk_index index;
        uint64_t size = 2 * KOS_CHUNK_MIN + 100;
        struct kos_error why = KOS_ERROR_NULL;
        size_t len;
        uint8_t *bytes = sample_index(&len, sha);

        if (!bytes)
                return -1;
        edit(bytes, &len, &size);
        int r = kos_chunk_index_parse(bytes, len, sha, size, &index, &why);
        free(bytes);
        if (r == 0)
                kos_chunk_index_done(&index);
        return r == -EBADMSG && strstr(why.msg, expect) ? 0 : -1;
}

static void edit_magic(uint8_t *b, size_t *len, uint64_t *size) { b[0] = 'X'; }
static void edit_chunker(uint8_t *b, size_t *len, uint64_t *size) { b[8] = 2; }
static void edit_size(uint8_t *b, size_t *len, uint64_t *size) { *size += 1; }
static void edit_truncate(uint8_t *b, size_t *len, uint64_t *size) { *len -= 1; }
static void edit_small_inner_chunk(uint8_t *b, size_t *len, uint64_t *size) {
        /* chunk 0 shrinks and chunk 2 grows: the sum holds, the minimum does not */
        b[KOS_CHUNK_INDEX_HEADER_LEN + 64 + 1] -= 1;         /* 8192 - 256 */
        b[KOS_CHUNK_INDEX_HEADER_LEN + 2 * 72 + 64 + 1] += 1; /* 100 + 256 */
}
static void edit_sum(uint8_t *b, size_t *len, uint64_t *size) { b[KOS_CHUNK_INDEX_HEADER_LEN + 2 * 72 + 64] = 99; }
static void edit_blob_length(uint8_t *b, size_t *len, uint64_t *size) { b[KOS_CHUNK_INDEX_HEADER_LEN + 68 + 3] = 0x7f; }
static void edit_count(uint8_t *b, size_t *len, uint64_t *size) { b[12] = 200; }

TEST(chunk_index_refuses_each_broken_rule_with_a_reason) {
        CHECK(parse_bad(edit_magic, "not a chunk index") == 0);
        CHECK(parse_bad(edit_chunker, "chunker 2 is not known") == 0);
        CHECK(parse_bad(edit_size, "of another component") == 0);
        CHECK(parse_bad(edit_truncate, "not an index of") == 0);
        CHECK(parse_bad(edit_count, "not an index of") == 0);
        CHECK(parse_bad(edit_small_inner_chunk, "chunk 0 has 7936 bytes") == 0);
        CHECK(parse_bad(edit_sum, "add up to") == 0);
        CHECK(parse_bad(edit_blob_length, "the blob of chunk 0") == 0);
}

TEST(chunk_index_cap_allows_an_honest_index_and_no_more) {
        CHECK(kos_chunk_index_max_count(0) == 1);
        CHECK(kos_chunk_index_max_count(10 * KOS_CHUNK_MIN) == 11);
        CHECK(kos_chunk_index_max_bytes(KOS_CHUNK_MIN) == KOS_CHUNK_INDEX_HEADER_LEN + 2 * KOS_CHUNK_ENTRY_LEN);
}
